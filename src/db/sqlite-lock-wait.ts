import { setTimeout as sleep } from 'node:timers/promises';

/** How long a SQLite statement waits for another connection's lock before failing (503 to the client). */
export const SQLITE_LOCK_WAIT_MS = 5_000;

const isBusy = (err: unknown) => /^SQLITE_BUSY/.test(String((err as { code?: unknown } | null)?.code));

/**
 * Runs `statement` (synchronous, on a connection opened with no busy timeout); while another
 * connection holds the lock it needs, runs it again on a timer, for up to `waitMs`. SQLite's own
 * busy handler waits by sleeping on the event loop: every other request of the process stopped
 * meanwhile, and a transaction of the process's other connection (Prisma's) held open across a
 * turn of the loop could not end before the wait ran out.
 */
export function whenUnlocked<T>(statement: () => T, waitMs = SQLITE_LOCK_WAIT_MS): T | Promise<T> {
  try {
    return statement();
  } catch (err) {
    if (!isBusy(err) || waitMs <= 0) throw err;
  }
  return retry(statement, Date.now() + waitMs);
}

async function retry<T>(statement: () => T, deadline: number): Promise<T> {
  // 1, 2, 4, 8, then every 10 ms: a lock held for a commit is gone within a millisecond or two.
  for (let pause = 1; ; pause = Math.min(pause * 2, 10)) {
    await sleep(Math.max(0, Math.min(pause, deadline - Date.now())));
    try {
      return statement();
    } catch (err) {
      if (!isBusy(err) || Date.now() >= deadline) throw err;
    }
  }
}
