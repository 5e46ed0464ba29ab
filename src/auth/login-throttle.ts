import { RateLimiterPrisma } from 'rate-limiter-flexible';
import type { Db } from '../db/prisma.js';
import type { OidcStore, RateLimitRow } from '../db/oidc-store.js';
import { throttleKey } from './throttle-counters.js';

/** What an account's failed sign-ins (and wrong current passwords) count under, however it was named. */
export const accountThrottleKey = (userId: string) => `user:${userId}`;

export type ThrottleLimits = { maxFailuresPerAccount: number; maxFailuresPerIp: number; windowSeconds: number };

/**
 * Counts failed logins per account and per IP in the database, so every process shares them.
 * The limits are read on every call, so an admin's change applies at once. rate-limiter-flexible
 * keeps the counters; every attempt's check reads both in one statement of the hot path store.
 */
export function createLoginThrottle(prisma: Db, store: Pick<OidcStore, 'findRateLimits'>, limits: () => ThrottleLimits) {
  const limiters = new Map<string, RateLimiterPrisma>();
  // One limiter per (kind, limit, window); counters live in the database, not in these objects.
  function limiter(kind: 'account' | 'ip', points: number, duration: number) {
    const key = `${kind}:${points}:${duration}`;
    let found = limiters.get(key);
    if (!found) {
      found = new RateLimiterPrisma({ storeClient: prisma, tableName: 'rateLimiterFlexible', keyPrefix: `login-${kind}`, points, duration, clearExpiredByTimeout: false });
      limiters.set(key, found);
    }
    return found;
  }
  const current = () => {
    const l = limits();
    return { byAccount: limiter('account', l.maxFailuresPerAccount, l.windowSeconds), byIp: limiter('ip', l.maxFailuresPerIp, l.windowSeconds), l };
  };
  // As rate-limiter-flexible reads a counter: an expired one counts nothing, one without an expiry
  // lasts until deleted.
  const blockedFor = (row: RateLimitRow | undefined, limit: number) =>
    row && row.points >= limit ? Math.max(1, Math.ceil((row.expire ? row.expire.getTime() - Date.now() : 0) / 1000)) : 0;

  return {
    /**
     * Seconds the caller must wait (0 when a login attempt may proceed), and whether the account
     * has failures on record (only then does a success need to clear them).
     */
    async check(account: string, ip: string): Promise<{ retryAfter: number; accountHasFailures: boolean }> {
      const { byAccount, byIp, l } = current();
      const [accountKey, ipKey] = [byAccount.getKey(throttleKey(account)), byIp.getKey(throttleKey(ip))];
      const rows = await store.findRateLimits([accountKey, ipKey]);
      const a = rows.find((r) => r.key === accountKey);
      return {
        retryAfter: Math.max(blockedFor(a, l.maxFailuresPerAccount), blockedFor(rows.find((r) => r.key === ipKey), l.maxFailuresPerIp)),
        accountHasFailures: (a?.points ?? 0) > 0,
      };
    },
    async recordFailure(account: string, ip: string) {
      const { byAccount, byIp } = current();
      // penalty() counts without rejecting, unlike consume() once the limit is reached.
      await Promise.all([byAccount.penalty(throttleKey(account), 1), byIp.penalty(throttleKey(ip), 1)]);
    },
    async recordSuccess(account: string) {
      await current().byAccount.delete(throttleKey(account));
    },
  };
}

export type LoginThrottle = ReturnType<typeof createLoginThrottle>;
