import { hash } from 'node:crypto';
import type { Db } from '../db/prisma.js';
import { findThenDelete, purgeInBatches } from '../db/purge.js';
import type { Provider } from '../db/url.js';

/**
 * What a throttle counts under: a digest of the login, address or client IP. The counters' key is
 * a primary key, and PostgreSQL refuses an index entry over about 2.7 kB, so a client's long
 * value (an over-long login, a forwarded IP of its own choosing) must not reach it as it is; nor
 * are addresses kept in the clear there.
 */
export const throttleKey = (value: string) => hash('sha256', value, 'base64url');

/**
 * Deletes the login and mail throttles' counters whose window has passed, in small paced batches
 * (see purge.ts): every login, address and IP ever tried leaves one, and the throttles only start
 * a counter again (the login throttle deletes an account's on its success). Returns how many went.
 */
export const purgeExpiredCounters = (prisma: Db, provider: Provider, signal?: AbortSignal) => {
  const now = new Date();
  return purgeInBatches(
    findThenDelete(
      async (take) => (await prisma.rateLimiterFlexible.findMany({ where: { expire: { lt: now } }, select: { key: true }, take })).map((c) => c.key),
      // Still expired: a counter started again meanwhile is live and stays. On PostgreSQL the rows
      // are locked in key order, as a sign-in's attempt locks them, and one in use is left for the
      // next purge: waiting for it could deadlock with an attempt restarting two counters.
      (keys) =>
        provider === 'postgresql'
          ? prisma.$executeRaw`DELETE FROM rate_limits WHERE key IN (
              SELECT key FROM rate_limits WHERE key = ANY(${keys}::text[]) AND expire < ${now.toISOString()}::timestamp ORDER BY key FOR UPDATE SKIP LOCKED)`
          : prisma.rateLimiterFlexible.deleteMany({ where: { key: { in: keys }, expire: { lt: now } } }),
    ),
    { signal },
  );
};
