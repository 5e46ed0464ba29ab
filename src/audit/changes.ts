import { isDeepStrictEqual } from 'node:util';

/** One field's change as the audit log keeps it: its old and new values, or, for a secret, only that it changed. */
export type FieldChange = { from: unknown; to: unknown } | { changed: true };
export type Changes = Record<string, FieldChange>;

/** What a replaced secret (a password, a client secret) leaves in the audit log. */
export const SECRET_CHANGED = { changed: true } as const;

// Fields whose values never reach the audit log, even if a caller forgets to name them secret.
const SECRET_NAME = /password|secret|hash|apikey|token$|^key$/i;

/**
 * The fields that differ between two views of one record (users, apps, connections, settings),
 * with their values; secrets (named in `secrets`, or by their name) only as changed. Views hold
 * what an admin would recognise, in the shape the API shows, so the log reads like the API.
 */
export function fieldChanges<T extends Record<string, unknown>>(before: T, after: T, options: { secrets?: readonly (keyof T & string)[] } = {}): Changes {
  const changes: Changes = {};
  for (const key of new Set([...Object.keys(before), ...Object.keys(after)])) {
    const [from, to] = [before[key] ?? null, after[key] ?? null];
    if (isDeepStrictEqual(from, to)) continue;
    changes[key] = options.secrets?.includes(key) || SECRET_NAME.test(key) ? SECRET_CHANGED : { from, to };
  }
  return changes;
}

/**
 * A new record's values as changes from nothing, so the audit log shows what it was created with
 * (roles, trust, scopes) in the same lines as an edit; fields left empty are left out.
 */
export const createdWith = <T extends Record<string, unknown>>(view: T) => fieldChanges({} as T, view);
