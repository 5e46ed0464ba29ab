import { readdirSync, readFileSync } from 'node:fs';
import { getPriority } from 'node:os';
import { describe, expect, it } from 'vitest';
import { lowerThreadPoolPriority } from '../../src/thread-pool-priority.js';

const threads = () =>
  readdirSync('/proc/self/task').map((tid) => ({ tid: Number(tid), name: readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').trim() }));

describe.runIf(process.platform === 'linux')('the thread pool’s priority', () => {
  it('is below the event loop’s, so hashing yields to requests when the CPU is full', async () => {
    expect(await lowerThreadPoolPriority(10)).toBeGreaterThan(0);
    const all = threads();
    const pool = all.filter((t) => t.name === 'libuv-worker');
    expect(pool.length).toBeGreaterThan(0);
    for (const t of pool) expect(getPriority(t.tid)).toBe(10);
    // The event loop's own thread is left as it was.
    expect(getPriority(process.pid)).toBe(0);
  });

  it('is left alone with nice 0', async () => {
    expect(await lowerThreadPoolPriority(0)).toBe(0);
  });
});
