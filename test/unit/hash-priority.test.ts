import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { getPriority } from 'node:os';
import { promisify } from 'node:util';
import argon2 from 'argon2';
import { afterAll, describe, expect, it } from 'vitest';
import { lowerHashPriority, lowerThreadPoolPriority } from '../../src/passwords/hash-priority.js';

const threads = () =>
  readdirSync('/proc/self/task').map((tid) => ({ tid: Number(tid), name: readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').trim() }));
// About a tenth of a second here: long enough to look at the threads while it runs.
const slow = { type: argon2.argon2id, memoryCost: 19_456, timeCost: 20, parallelism: 1 } as const;
// `npm install` builds it (scripts/build-argon2-variants.js) wherever it finds a compiler.
const latchBuild = argon2.setHashPriority(0);

describe.runIf(process.platform === 'linux')('the priority of password hashes', () => {
  afterAll(() => argon2.setHashPriority(0));

  it.runIf(latchBuild)('is lowered on threads of their own, the thread pool left at the event loop’s (Latch’s argon2 build)', async () => {
    expect(await lowerHashPriority(10)).toBe('hash threads');
    let settled = false;
    const hashing = argon2.hash('violet kettle orbit 42', slow).finally(() => (settled = true));
    let seen: { tid: number; name: string }[] = [];
    while (!seen.some((t) => t.name === 'argon2') && !settled) {
      await new Promise((resolve) => setTimeout(resolve, 5));
      seen = threads();
    }
    expect(seen.some((t) => t.name === 'argon2')).toBe(true);
    for (const t of seen) expect(getPriority(t.tid)).toBe(t.name === 'argon2' ? 10 : 0);
    expect(seen.some((t) => t.name === 'libuv-worker')).toBe(true);
    expect(await argon2.verify(await hashing, 'violet kettle orbit 42')).toBe(true);
    // The hash's thread ends with the hash.
    expect(threads().some((t) => t.name === 'argon2')).toBe(false);
  });

  it('is left alone with nice 0', async () => {
    expect(await lowerHashPriority(0)).toBe('unchanged');
  });

  it('lowers the whole thread pool where the binding is the prebuilt one', async () => {
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ['--import', 'tsx', '-e', `import('./src/passwords/hash-priority.ts').then(async (m) => console.log(await m.lowerHashPriority(10)))`],
      { env: { ...process.env, ARGON2_BUILD: 'portable' } },
    );
    expect(stdout.trim()).toBe('thread pool');
  });

  it('lowers every thread of the pool, and only those', async () => {
    expect(await lowerThreadPoolPriority(10)).toBeGreaterThan(0);
    const pool = threads().filter((t) => t.name === 'libuv-worker');
    expect(pool.length).toBeGreaterThan(0);
    for (const t of pool) expect(getPriority(t.tid)).toBe(10);
    // The event loop's own thread is left as it was.
    expect(getPriority(process.pid)).toBe(0);
  });
});
