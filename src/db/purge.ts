/**
 * Runs `deleteBatch` until it deletes fewer than `batchSize` rows, yielding to the event loop
 * between batches so requests run in between; housekeeping never holds a long statement or lock.
 * Returns how many rows went.
 */
export async function purgeInBatches(deleteBatch: (limit: number) => Promise<number>, batchSize = 500): Promise<number> {
  let total = 0;
  for (;;) {
    const count = await deleteBatch(batchSize);
    total += count;
    if (count < batchSize) return total;
    await new Promise((resolve) => setImmediate(resolve));
  }
}
