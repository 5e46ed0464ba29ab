/** Rows one purge statement deletes: about a millisecond of SQLite's time here. */
export const PURGE_BATCH_SIZE = 100;

/**
 * After each batch, housekeeping pauses this many times as long as the batch took, so that it
 * takes at most a fifth of the time while it runs. Batches of 500 run back to back held SQLite's
 * event loop for over 100 ms at a time while a large purge ran, and wrote its log faster than the
 * checkpoints copied it, into the connection's own checkpoint (see README, Housekeeping).
 */
export const PURGE_PAUSE_FACTOR = 4;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Runs `deleteBatch` until it deletes fewer than `batchSize` rows, pausing between batches (see
 * PURGE_PAUSE_FACTOR) so requests run in between; housekeeping never holds a long statement or
 * lock. Returns how many rows went.
 */
export async function purgeInBatches(deleteBatch: (limit: number) => Promise<number>, batchSize = PURGE_BATCH_SIZE, pauseFactor = PURGE_PAUSE_FACTOR): Promise<number> {
  let total = 0;
  for (;;) {
    const started = performance.now();
    const count = await deleteBatch(batchSize);
    total += count;
    if (count < batchSize) return total;
    await sleep((performance.now() - started) * pauseFactor);
  }
}

/**
 * Runs `purge` every `intervalMs` without keeping the process alive, never two at once: a paced
 * purge of a large backlog can outlast the interval, and the next one starts only after it.
 * `purge` must not reject (it logs its own errors). Stop it with clearInterval.
 */
export function schedulePurges(purge: () => Promise<unknown>, intervalMs: number): NodeJS.Timeout {
  let running = false;
  const timer = setInterval(() => {
    if (running) return;
    running = true;
    void purge().finally(() => {
      running = false;
    });
  }, intervalMs);
  return timer.unref();
}
