import { afterEach, describe, expect, it, vi } from 'vitest';
import { PURGE_BATCH_SIZE, PURGE_PAUSE_FACTOR, findThenDelete, purgeInBatches, schedulePurges } from '../../src/db/purge.js';

afterEach(() => {
  vi.useRealTimers();
});

describe('purgeInBatches', () => {
  it('deletes in small batches until one comes back short, and counts every row', async () => {
    const asked: number[] = [];
    let left = 250;
    const total = await purgeInBatches(async (limit) => {
      asked.push(limit);
      const n = Math.min(limit, left);
      left -= n;
      return n;
    });
    expect(total).toBe(250);
    expect(asked).toEqual([PURGE_BATCH_SIZE, PURGE_BATCH_SIZE, PURGE_BATCH_SIZE]);
  });

  it('pauses after each batch for PURGE_PAUSE_FACTOR times as long as the batch took', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'performance'] });
    const starts: number[] = [];
    const durations = [20, 5, 10];
    const purged = purgeInBatches(async (limit) => {
      starts.push(performance.now());
      const took = durations[starts.length - 1]!;
      await new Promise((resolve) => setTimeout(resolve, took));
      return starts.length < durations.length ? limit : 0;
    });
    await vi.runAllTimersAsync();
    expect(await purged).toBe(2 * PURGE_BATCH_SIZE);
    // Each batch starts once the previous one and its pause are over: 20 + 4 × 20, then 5 + 4 × 5.
    const gaps = starts.slice(1).map((t, i) => t - starts[i]!);
    expect(gaps).toEqual([20 * (1 + PURGE_PAUSE_FACTOR), 5 * (1 + PURGE_PAUSE_FACTOR)]);
  });

  it('ends at once when its signal aborts during a pause', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
    const stop = new AbortController();
    let batches = 0;
    const purged = purgeInBatches(
      async (limit) => {
        batches += 1;
        await new Promise((resolve) => setTimeout(resolve, 100));
        return limit;
      },
      { signal: stop.signal },
    );
    // The first batch ends at 100 ms; its pause would last until 500 ms.
    await vi.advanceTimersByTimeAsync(150);
    stop.abort();
    await vi.advanceTimersByTimeAsync(0);
    expect(await purged).toBe(PURGE_BATCH_SIZE);
    expect(batches).toBe(1);
    expect(performance.now()).toBeLessThan(200);
  });

  it('stops at the first batch that fails, and reports the error', async () => {
    let calls = 0;
    await expect(
      purgeInBatches(async () => {
        calls += 1;
        throw new Error('database is locked');
      }),
    ).rejects.toThrow('database is locked');
    expect(calls).toBe(1);
  });
});

describe('findThenDelete', () => {
  it('deletes the keys it found, batch by batch, and asks for no delete once none are left', async () => {
    let rows = Array.from({ length: 4 }, (_, i) => `k${i}`);
    let finds = 0;
    const removed: string[][] = [];
    const batch = findThenDelete(
      async (limit) => {
        finds += 1;
        return rows.slice(0, limit);
      },
      async (keys) => {
        removed.push(keys);
        rows = rows.filter((k) => !keys.includes(k));
      },
    );
    expect(await purgeInBatches(batch, { batchSize: 2, pauseFactor: 0 })).toBe(4);
    // The third batch found nothing and deleted nothing.
    expect(finds).toBe(3);
    expect(removed).toEqual([['k0', 'k1'], ['k2', 'k3']]);
    expect(rows).toEqual([]);
  });
});

describe('schedulePurges', () => {
  it('starts a purge every interval, but not while the last one is still running', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    let started = 0;
    let finish = () => {};
    const purges = schedulePurges(() => {
      started += 1;
      return new Promise<void>((resolve) => (finish = resolve));
    }, 1000);
    await vi.advanceTimersByTimeAsync(3500);
    // Due three times, but the first purge is still running.
    expect(started).toBe(1);
    finish();
    await vi.advanceTimersByTimeAsync(1000);
    expect(started).toBe(2);
    finish();
    await purges.stop();
    await vi.advanceTimersByTimeAsync(5000);
    expect(started).toBe(2);
  });

  it('stops the purge under way after its current batch, and resolves once it has', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    let batches = 0;
    let purged: Promise<number> | undefined;
    let releaseBatch = () => {};
    const purges = schedulePurges((signal) => {
      purged = purgeInBatches(
        async (limit) => {
          batches += 1;
          await new Promise<void>((resolve) => (releaseBatch = resolve));
          return limit;
        },
        { signal },
      );
      return purged;
    }, 1000);
    await vi.advanceTimersByTimeAsync(1000);
    expect(batches).toBe(1);
    let stopped = false;
    const stopping = purges.stop().then(() => (stopped = true));
    await Promise.resolve();
    // Still deleting its batch: stop waits for it.
    expect(stopped).toBe(false);
    releaseBatch();
    await stopping;
    expect(batches).toBe(1);
    expect(await purged).toBe(PURGE_BATCH_SIZE);
  });
});
