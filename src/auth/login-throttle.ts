import { RateLimiterPrisma, type RateLimiterRes } from 'rate-limiter-flexible';
import type { Db } from '../db/prisma.js';

export type ThrottleLimits = { maxFailuresPerAccount: number; maxFailuresPerIp: number; windowSeconds: number };

/**
 * Counts failed logins per account and per IP in the database, so every process shares them.
 * The limits are read on every call, so an admin's change applies at once.
 */
export function createLoginThrottle(prisma: Db, limits: () => ThrottleLimits) {
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
  const blockedFor = (res: RateLimiterRes | null, limit: number) =>
    res && res.consumedPoints >= limit ? Math.max(1, Math.ceil(res.msBeforeNext / 1000)) : 0;

  return {
    /**
     * Seconds the caller must wait (0 when a login attempt may proceed), and whether the account
     * has failures on record (only then does a success need to clear them).
     */
    async check(account: string, ip: string): Promise<{ retryAfter: number; accountHasFailures: boolean }> {
      const { byAccount, byIp, l } = current();
      const [a, i] = await Promise.all([byAccount.get(account), byIp.get(ip)]);
      return {
        retryAfter: Math.max(blockedFor(a, l.maxFailuresPerAccount), blockedFor(i, l.maxFailuresPerIp)),
        accountHasFailures: (a?.consumedPoints ?? 0) > 0,
      };
    },
    async recordFailure(account: string, ip: string) {
      const { byAccount, byIp } = current();
      // penalty() counts without rejecting, unlike consume() once the limit is reached.
      await Promise.all([byAccount.penalty(account, 1), byIp.penalty(ip, 1)]);
    },
    async recordSuccess(account: string) {
      await current().byAccount.delete(account);
    },
  };
}

export type LoginThrottle = ReturnType<typeof createLoginThrottle>;
