import { databaseUnavailable } from './errors.js';

export type GroupCommitOptions<T> = {
  /** How long the first write of a group waits for others to join it; 0: until the event loop's
   * current turn has run (setImmediate), so a group is the writes of one turn. */
  windowMs: number;
  /** Whether other requests are under way whose writes could join a group. When none is, a group
   * closes at the end of the current turn instead of waiting out the window: a lone request would
   * wait for company that is not coming (a sign-in, five commits, took 95 ms from one client with
   * those waits and 61 ms without). */
  othersAtWork?: () => boolean;
  /** Stores a whole group, or throws having stored none of it. */
  commitAll: (group: T[]) => void | Promise<void>;
  /** Stores one write alone: after a group failed, each of its writes is retried this way. */
  commitOne: (write: T) => void | Promise<void>;
  /** Runs after each group, stored or retried. */
  afterCommit?: () => void;
};

/**
 * Group commit, for both stores: the writes that arrive within `windowMs` of a group's first share
 * one commit (a commit costs more than the rows it stores). Each caller resumes once its own write
 * is stored, so a request never answers with a token that is not stored yet. When the shared
 * commit fails, each write is retried alone, so only the one that brought the bad row fails;
 * unless the database could not serve (locked, unreachable: see databaseUnavailable), which every
 * write alone would meet again, one timeout after another: then the whole group fails at once.
 */
export function createGroupCommit<T>({ windowMs, othersAtWork = () => true, commitAll, commitOne, afterCommit }: GroupCommitOptions<T>) {
  type Waiting = { write: T; resolve: () => void; reject: (err: unknown) => void };
  let waiting: Waiting[] = [];
  let due: { cancel(): void } | undefined;
  const schedule = (fn: () => void) => {
    if (windowMs === 0 || !othersAtWork()) {
      const immediate = setImmediate(fn);
      return { cancel: () => clearImmediate(immediate) };
    }
    const timeout = setTimeout(fn, windowMs);
    return { cancel: () => clearTimeout(timeout) };
  };
  let held: Promise<void> | undefined;

  async function flush() {
    due?.cancel();
    due = undefined;
    if (held || waiting.length === 0) return;
    const group = waiting;
    waiting = [];
    try {
      await commitAll(group.map((w) => w.write));
      for (const w of group) w.resolve();
    } catch (err) {
      if (group.length === 1 || databaseUnavailable(err)) for (const w of group) w.reject(err);
      else
        for (const w of group) {
          try {
            await commitOne(w.write);
            w.resolve();
          } catch (retryErr) {
            w.reject(retryErr);
          }
        }
    }
    afterCommit?.();
  }

  async function released() {
    while (held) await held;
  }

  return {
    /** Resolves once `write` is stored; rejects with its own error if it cannot be. */
    add: (write: T) =>
      new Promise<void>((resolve, reject) => {
        if (waiting.push({ write, resolve, reject }) === 1 && !held) due = schedule(() => void flush());
      }),
    /** No group is committed until `until` settles; the writes that arrive meanwhile then go as one. */
    hold(until: Promise<unknown>) {
      const settled = until.then(
        () => {},
        () => {},
      );
      held = settled.then(() => {
        held = undefined;
        return flush();
      });
    },
    /** Settles when no hold is in place (at once if none is). */
    released,
    /** Commits the writes still waiting, after any hold: for closing the store. */
    async drain() {
      await released();
      await flush();
    },
  };
}
