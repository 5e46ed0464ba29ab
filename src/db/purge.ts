/** Rows one purge statement deletes: about a millisecond of SQLite's time here. */
export const PURGE_BATCH_SIZE = 100;

/**
 * After each batch, housekeeping pauses this many times as long as the batch took, so that it
 * takes at most a fifth of the time while it runs. Batches of 500 run back to back held SQLite's
 * event loop for over 100 ms at a time while a large purge ran, and wrote its log faster than the
 * checkpoints copied it, into the connection's own checkpoint (see README, Housekeeping).
 */
export const PURGE_PAUSE_FACTOR = 4;

export type PurgeOptions = {
  batchSize?: number;
  pauseFactor?: number;
  /** Once aborted, the purge ends after the batch under way (shutdown). */
  signal?: AbortSignal;
};

/** Resolves after `ms`, or at once when `signal` aborts. */
function pause(ms: number, signal?: AbortSignal) {
  return new Promise<void>((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}

/**
 * Runs `deleteBatch` until it deletes fewer than `batchSize` rows, pausing between batches (see
 * PURGE_PAUSE_FACTOR) so requests run in between; housekeeping never holds a long statement or
 * lock. Returns how many rows went.
 */
export async function purgeInBatches(
  deleteBatch: (limit: number) => Promise<number>,
  { batchSize = PURGE_BATCH_SIZE, pauseFactor = PURGE_PAUSE_FACTOR, signal }: PurgeOptions = {},
): Promise<number> {
  let total = 0;
  while (!signal?.aborted) {
    const started = performance.now();
    const count = await deleteBatch(batchSize);
    total += count;
    if (count < batchSize || signal?.aborted) break;
    await pause((performance.now() - started) * pauseFactor, signal);
  }
  return total;
}

/**
 * A batch for the tables reached through Prisma, whose deletes take no LIMIT: `find` returns the
 * keys of up to `limit` rows to go and `remove` deletes them. Returns how many keys were found.
 */
export const findThenDelete =
  <K>(find: (limit: number) => Promise<K[]>, remove: (keys: K[]) => Promise<unknown>) =>
  async (limit: number) => {
    const keys = await find(limit);
    if (keys.length > 0) await remove(keys);
    return keys.length;
  };

/**
 * Runs `purge` every `intervalMs` without keeping the process alive, never two at once: a paced
 * purge of a large backlog can outlast the interval, and the next one starts only after it.
 * `purge` must not reject (it logs its own errors). `stop` ends the schedule and the purge under
 * way after its current batch, and resolves once it has.
 */
export function schedulePurges(purge: (signal: AbortSignal) => Promise<unknown>, intervalMs: number) {
  const stopping = new AbortController();
  let running: Promise<unknown> | undefined;
  const timer = setInterval(() => {
    running ??= purge(stopping.signal).finally(() => {
      running = undefined;
    });
  }, intervalMs).unref();
  return {
    async stop() {
      clearInterval(timer);
      stopping.abort();
      await running;
    },
  };
}
