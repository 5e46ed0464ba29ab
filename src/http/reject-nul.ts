import type { Middleware } from 'koa';
import { AppError } from './problem.js';

const NUL = '\u0000';

/** The path of the first string holding a NUL character in a parsed body or query, if any. */
export function findNul(value: unknown, path: string[] = []): string | undefined {
  if (typeof value === 'string') return value.includes(NUL) ? path.join('.') || 'value' : undefined;
  if (Array.isArray(value)) {
    for (const [i, v] of value.entries()) {
      const found = findNul(v, [...path, String(i)]);
      if (found) return found;
    }
    return undefined;
  }
  if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      const found = k.includes(NUL) ? [...path, k].join('.') : findNul(v, [...path, k]);
      if (found) return found;
    }
  }
  return undefined;
}

/** Throws a 400 naming the field when parsed input holds a NUL character. */
export function assertNoNul(value: unknown) {
  const path = findNul(value);
  if (path) throw new AppError('VALIDATION_FAILED', 'NUL characters are not allowed.', [{ path, message: 'NUL characters are not allowed' }]);
}

/**
 * NUL characters are never valid in Latch's input and PostgreSQL cannot store them. In a URL path
 * nothing can match (404); in the query of a page, 400. (API routes check their query and body
 * field by field, and /o's token lookups ignore such values.)
 */
export function rejectNulInUrl(): Middleware {
  return (ctx, next) => {
    // Only an escaped path can hold a NUL (Node refuses a raw one in the request line).
    if (ctx.path.includes('%')) {
      let path: string;
      try {
        path = decodeURIComponent(ctx.path);
      } catch {
        throw new AppError('NOT_FOUND');
      }
      if (path.includes(NUL)) throw new AppError('NOT_FOUND');
    }
    if (!ctx.path.startsWith('/api/')) assertNoNul(ctx.query);
    return next();
  };
}
