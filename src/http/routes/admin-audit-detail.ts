// How the console's audit log shows an event's detail: each changed field on a line of its own
// ("isAdmin: false → true", "redirectUris: added https://…"), then the rest of the detail as JSON.
// Plain text only; the page escapes it.

const MAX_VALUE = 200;
const MAX_REST = 300;

export type ChangeLine = { field: string; text: string };

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const clip = (s: string, max: number) => (s.length > max ? `${s.slice(0, max - 1)}…` : s);

function show(value: unknown) {
  if (value === null || value === undefined) return '(none)';
  if (typeof value === 'string') return clip(value === '' ? '(empty)' : value, MAX_VALUE);
  return clip(JSON.stringify(value), MAX_VALUE);
}

/** One change in words: a secret only as changed; a list by what it gained and lost. */
function describe(change: unknown): string {
  if (!isObject(change)) return show(change);
  if (change.changed === true) return 'changed (the value is not recorded)';
  const { from, to } = change;
  if (Array.isArray(from) && Array.isArray(to) && [...from, ...to].every((v) => !isObject(v) && !Array.isArray(v))) {
    const added = to.filter((v) => !from.includes(v));
    const removed = from.filter((v) => !to.includes(v));
    if (added.length || removed.length) {
      return [added.length ? `added ${added.map(show).join(', ')}` : '', removed.length ? `removed ${removed.map(show).join(', ')}` : ''].filter(Boolean).join('; ');
    }
  }
  return `${show(from)} → ${show(to)}`;
}

/**
 * The detail of one audit event for the console: its changes, one line each (none for an event
 * that records none; an empty list when an edit changed nothing), and the rest as short JSON,
 * without what the lines already say (the fields sent, the new values of settings).
 */
export function auditDetail(detail: unknown): { changes?: ChangeLine[]; detailText: string } {
  if (!isObject(detail)) return { detailText: detail === null || detail === undefined ? '' : clip(JSON.stringify(detail), MAX_REST) };
  const { changes, ...rest } = detail;
  if (!isObject(changes)) return { detailText: Object.keys(detail).length ? clip(JSON.stringify(detail), MAX_REST) : '' };
  const lines = Object.entries(changes).map(([field, change]) => ({ field, text: describe(change) }));
  const others = Object.fromEntries(Object.entries(rest).filter(([key]) => key !== 'fields' && !Object.hasOwn(changes, key)));
  return { changes: lines, detailText: Object.keys(others).length ? clip(JSON.stringify(others), MAX_REST) : '' };
}
