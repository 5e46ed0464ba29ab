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
  /** One group at a time: a group waits until the one before it is stored (or has failed), so
   * groups are stored in the order they closed even when a commit waits (SQLite's lock). */
  oneAtATime?: boolean;
};

/**
 * Group commit, for both stores: the writes that arrive within `windowMs` of a group's first share
 * one commit (a commit costs more than the rows it stores). Each caller resumes once its own write
 * is stored, so a request never answers with a token that is not stored yet. When the shared
 * commit fails, each write is retried alone, so only the one that brought the bad row fails. When
 * the database cannot serve (unreachable, locked: see databaseUnavailable), every write alone
 * would meet the same, one wait after another, so the whole group fails at once. (A PostgreSQL
 * lock wait may be one row's; but retried alone and all at once, the writes would lose their
 * order, a session destroyed at sign-out after one written in the group coming back.)
 */
export function createGroupCommit<T>({ windowMs, othersAtWork = () => true, commitAll, commitOne, afterCommit, oneAtATime = false }: GroupCommitOptions<T>) {
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
  const committing = new Set<Promise<void>>();
  let queuedBehind = false;

  const retryAlone = async (w: Waiting) => {
    try {
      await commitOne(w.write);
      w.resolve();
    } catch (err) {
      w.reject(err);
    }
  };

  async function commit(group: Waiting[]) {
    try {
      await commitAll(group.map((w) => w.write));
      for (const w of group) w.resolve();
    } catch (err) {
      if (group.length === 1 || databaseUnavailable(err)) for (const w of group) w.reject(err);
      else for (const w of group) await retryAlone(w);
    }
    afterCommit?.();
  }

  async function flush(): Promise<void> {
    due?.cancel();
    due = undefined;
    if (held || waiting.length === 0) return;
    // The writes stay for the next group, which the one under way starts when it is done.
    if (oneAtATime && committing.size) {
      queuedBehind = true;
      return;
    }
    const group = waiting;
    waiting = [];
    const run = commit(group);
    committing.add(run);
    try {
      await run;
    } finally {
      committing.delete(run);
    }
    // Only writes that were due while this group was committing (it waited for a lock): the
    // others keep their own window, as when commits never wait.
    if (queuedBehind) {
      queuedBehind = false;
      await flush();
    }
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
    /** Commits the writes still waiting, after any hold, and waits for the commits under way: for closing the store. */
    async drain() {
      while (waiting.length || held || committing.size) {
        await released();
        await flush();
        await Promise.all(committing);
      }
    },
  };
}
