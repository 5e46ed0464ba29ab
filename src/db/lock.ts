import type { Db } from './prisma.js';
import type { Provider } from './url.js';

// Named locks for check-then-write sequences that must not interleave across processes: first-start
// secrets, "is this the last admin?", a new emailed link replacing a user's last one (scoped to
// that user), and a new API key replacing its app's last one (scoped to that app). PostgreSQL: a transaction-scoped advisory lock. SQLite: a write as the first
// statement takes the database's write lock at once (a transaction that read first could deadlock
// with another doing the same).
const LOCKS = { startup: 0x1a7c5, admins: 0x1a7c6, emailTokens: 0x1a7c7, apiKeys: 0x1a7c8 } as const;

/** Runs `fn` in a transaction under the lock `name`, or on PostgreSQL under its part for `scope` only (one user's, say). */
export async function withLock<T>(prisma: Db, provider: Provider, name: keyof typeof LOCKS, fn: (tx: Db) => Promise<T>, scope?: string): Promise<T> {
  return prisma.$transaction(
    async (tx) => {
      if (provider !== 'postgresql') await tx.$executeRawUnsafe('DELETE FROM cookie_keys WHERE 1 = 0');
      else if (scope === undefined) await tx.$executeRawUnsafe(`SELECT pg_advisory_xact_lock(${LOCKS[name]})`);
      else await tx.$executeRaw`SELECT pg_advisory_xact_lock(${LOCKS[name]}::int, hashtext(${scope}))`;
      return fn(tx as Db);
    },
    { timeout: 60_000, maxWait: 60_000 },
  );
}
