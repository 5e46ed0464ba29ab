import { pbkdf2 } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';

/**
 * Lowers the scheduling priority of libuv's thread pool (argon2 hashes, but also WebCrypto JWT
 * signing, DNS lookups and file reads) `nice` steps below the event loop's. When the CPU is
 * saturated the event loop, which does all the work of opaque-token, introspection and userinfo
 * requests, gets the larger share, and a burst of sign-ins slows itself (and JWT signing) rather
 * than those requests. Linux only (threads are found in /proc and reniced one by one); elsewhere,
 * or with `nice` 0, nothing changes. Returns how many threads were reniced.
 */
export async function lowerThreadPoolPriority(nice: number): Promise<number> {
  if (nice === 0 || process.platform !== 'linux') return 0;
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
