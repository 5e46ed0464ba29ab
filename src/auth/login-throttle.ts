import type { OidcStore, RateLimitRow } from '../db/oidc-store.js';
import { throttleKey } from './throttle-counters.js';

/** What an account's failed sign-ins (and wrong current passwords) count under, however it was named. */
export const accountThrottleKey = (userId: string) => `user:${userId}`;

export type ThrottleLimits = { maxFailuresPerAccount: number; maxFailuresPerIp: number; windowSeconds: number };

/**
 * One attempt's points, taken before its password is hashed. `retryAfter` (seconds) is 0 when the
 * attempt may go on; otherwise it is refused, and gives its points back.
 */
export type LoginAttempt = { retryAfter: number; account: RateLimitRow; ip: RateLimitRow };

/**
 * Counts password attempts per account and per IP in the database, so every process shares them.
 * Every attempt takes its point on both counters before the hash, in one statement, and is
 * refused once that point is over a limit: concurrent attempts each see those before them, so
 * none gets past a limit. A failure keeps its points; a success clears the account's and gives the
 * IP's back, so the counters hold failures and the attempts still under way. The counters are
 * rate-limiter-flexible's (same table, keys and windows), so purgeExpiredCounters deletes them
 * and the counts of a running version carry over. The limits are read on every attempt, so an
 * admin's change applies at once.
 */
export function createLoginThrottle(store: Pick<OidcStore, 'takeRateLimits' | 'returnRateLimits'>, limits: () => ThrottleLimits) {
  // Seconds until the counter's window ends, once it is over its limit; a counter without an
  // expiry (none is written here) lasts until deleted.
  const blockedFor = (row: RateLimitRow, limit: number) =>
    row.points > limit ? Math.max(1, Math.ceil((row.expire ? row.expire.getTime() - Date.now() : 0) / 1000)) : 0;

  return {
    /** Takes one attempt for the account (see accountThrottleKey) from the IP. */
    async take(account: string, ip: string): Promise<LoginAttempt> {
      const l = limits();
      const [accountKey, ipKey] = [`login-account:${throttleKey(account)}`, `login-ip:${throttleKey(ip)}`];
      const rows = await store.takeRateLimits([accountKey, ipKey], l.windowSeconds * 1000);
      const [a, i] = [rows.find((r) => r.key === accountKey)!, rows.find((r) => r.key === ipKey)!];
      return { retryAfter: Math.max(blockedFor(a, l.maxFailuresPerAccount), blockedFor(i, l.maxFailuresPerIp)), account: a, ip: i };
    },
    /** The password was right: the account's failures are forgiven and the IP's point given back. */
    succeeded: (attempt: LoginAttempt) => store.returnRateLimits({ clear: [attempt.account.key], giveBack: [attempt.ip] }),
    /** The attempt counts for nothing: refused before the hash, or refused for another reason once the password was proven. */
    giveBack: (attempt: LoginAttempt) => store.returnRateLimits({ clear: [], giveBack: [attempt.account, attempt.ip] }),
  };
}

export type LoginThrottle = ReturnType<typeof createLoginThrottle>;
