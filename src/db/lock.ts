import type { Db } from './prisma.js';
import type { Provider } from './url.js';

// Named locks for check-then-write sequences that must not interleave across processes: first-start
// secrets, "is this the last admin?", and a new emailed link replacing the user's last one. PostgreSQL: a transaction-scoped advisory lock. SQLite: a
// write as the first statement takes the database's write lock at once (a transaction that read
// first could deadlock with another doing the same).
const LOCKS = { startup: 0x1a7c5, admins: 0x1a7c6, emailTokens: 0x1a7c7 } as const;

export async function withLock<T>(prisma: Db, provider: Provider, name: keyof typeof LOCKS, fn: (tx: Db) => Promise<T>): Promise<T> {
  return prisma.$transaction(
    async (tx) => {
      await tx.$executeRawUnsafe(
        provider === 'postgresql' ? `SELECT pg_advisory_xact_lock(${LOCKS[name]})` : 'DELETE FROM cookie_keys WHERE 1 = 0',
      );
      return fn(tx as Db);
    },
    { timeout: 60_000, maxWait: 60_000 },
  );
}
