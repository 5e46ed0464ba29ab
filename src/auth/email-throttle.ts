import { RateLimiterPrisma } from 'rate-limiter-flexible';
import type { Db } from '../db/prisma.js';
import { normalizeLogin } from '../users/users.service.js';
import { throttleKey } from './throttle-counters.js';

export type EmailThrottleConfig = { maxPerAddress: number; maxPerIp: number; windowSeconds: number };

/** Limits mail-sending requests (reset, magic link) per address and per IP, shared by all processes. */
export function createEmailThrottle(prisma: Db, config: EmailThrottleConfig) {
  const common = { storeClient: prisma, tableName: 'rateLimiterFlexible', duration: config.windowSeconds, clearExpiredByTimeout: false };
  const byAddress = new RateLimiterPrisma({ ...common, keyPrefix: 'mail-address', points: config.maxPerAddress });
  const byIp = new RateLimiterPrisma({ ...common, keyPrefix: 'mail-ip', points: config.maxPerIp });

  /** Counts one request; returns the seconds to wait when over a limit, else 0. */
  return async function take(purpose: string, email: string, ip: string): Promise<number> {
    const [a, i] = await Promise.all([
      byAddress.penalty(`${purpose}:${throttleKey(normalizeLogin(email))}`, 1),
      byIp.penalty(`${purpose}:${throttleKey(ip)}`, 1),
    ]);
    const over = [a.consumedPoints > config.maxPerAddress ? a : null, i.consumedPoints > config.maxPerIp ? i : null];
    const waits = over.filter((r) => r !== null).map((r) => Math.max(1, Math.ceil(r!.msBeforeNext / 1000)));
    return waits.length ? Math.max(...waits) : 0;
  };
}

export type EmailThrottle = ReturnType<typeof createEmailThrottle>;
