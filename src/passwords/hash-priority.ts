import { pbkdf2 } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';
import argon2 from 'argon2';

/**
 * Runs argon2 hashes `nice` steps below the event loop, so that when the CPU is saturated the
 * event loop, which does all the work of token, introspection and userinfo requests, gets the
 * larger share, and a burst of sign-ins slows itself rather than those requests.
 *
 * With Latch's build of argon2's binding (patches/, scripts/build-argon2-variants.js) each hash
 * runs on a thread of its own at that priority, and libuv's thread pool keeps the process's, so
 * the JWT signatures it computes (WebCrypto) do not wait behind hashes. With the prebuilt binding
 * the whole pool is lowered instead, signatures with it. Linux only; elsewhere, or with `nice` 0,
 * nothing changes.
 */
export async function lowerHashPriority(nice: number): Promise<'hash threads' | 'thread pool' | 'unchanged'> {
  if (nice === 0 || process.platform !== 'linux') return 'unchanged';
  if (argon2.setHashPriority(nice)) return 'hash threads';
  return (await lowerThreadPoolPriority(nice)) > 0 ? 'thread pool' : 'unchanged';
}

/** Lowers every thread of libuv's pool `nice` steps below the event loop; returns how many. */
export async function lowerThreadPoolPriority(nice: number): Promise<number> {
  // libuv starts every pool thread on the first piece of work.
  await new Promise((resolve) => pbkdf2('', '', 1, 8, 'sha256', resolve));
  const target = Math.min(19, getPriority() + nice);
  let count = 0;
  for (const tid of readdirSync('/proc/self/task')) {
    try {
      if (readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').trim() !== 'libuv-worker') continue;
      setPriority(Number(tid), target);
      count += 1;
    } catch {
      // A thread that ended meanwhile, or no permission to change it: leave it as it is.
    }
  }
  return count;
}
