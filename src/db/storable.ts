// Input that Latch's databases cannot store, found before anything is written.
export const NUL = '\u0000';
const LONE_SURROGATE = /\p{Cs}/u;
// Latch's own input is never nested this deep; parsed JSON can be, and a walk must end.
export const MAX_DEPTH = 32;

type Problem = { path: string; message: string };

function problemIn(text: string): string | undefined {
  if (text.includes(NUL)) return 'NUL characters are not allowed';
  // A lone UTF-16 surrogate (only JSON's \ud800 escapes make one; in /u mode a pair is one code
  // point, so \p{Cs} matches only a lone one) is no text at all: Prisma's query engine and
  // PostgreSQL refuse it.
  if (LONE_SURROGATE.test(text)) return 'Text must be valid Unicode';
  return undefined;
}

/**
 * The first thing in a parsed body or query that no database could store: a NUL character or a
 * lone surrogate in a key or value, or nesting deeper than MAX_DEPTH. Walked without recursion,
 * so no input can exhaust the stack.
 */
export function findUnstorable(value: unknown): Problem | undefined {
  const pending: [unknown, string[]][] = [[value, []]];
  while (pending.length) {
    const [v, path] = pending.pop()!;
    if (typeof v === 'string') {
      const message = problemIn(v);
      if (message) return { path: path.join('.') || 'value', message };
    } else if (v && typeof v === 'object') {
      if (path.length >= MAX_DEPTH) return { path: path.join('.'), message: `Nested deeper than ${MAX_DEPTH} levels` };
      // In reverse, so that the first problem in the input's own order is the one found.
      for (const [k, child] of Object.entries(v).reverse()) {
        const message = problemIn(k);
        if (message) return { path: [...path, k].join('.'), message };
        pending.push([child, [...path, k]]);
      }
    }
  }
  return undefined;
}
