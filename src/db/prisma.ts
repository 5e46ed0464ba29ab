import type { PrismaClient } from '../generated/sqlite/client.js';
import { providerOf, sqliteFile } from './url.js';
import { CHECKPOINT_BACKSTOP_PAGES } from './sqlite-checkpointer.js';
import { releaseLostConnections } from './lost-connections.js';
import { SQLITE_LOCK_WAIT_MS } from './sqlite-lock-wait.js';

/**
 * The Prisma client type. Both generated clients (sqlite, postgresql) come from one schema and
 * expose the same API; the SQLite one's type stands for both.
 */
export type Db = PrismaClient;

export async function createPrisma(db: { url: string; poolSize: number; timeoutSeconds?: number }): Promise<Db> {
  if (providerOf(db.url) === 'sqlite') {
    const [{ PrismaClient }, { PrismaBetterSQLite3 }] = await Promise.all([
      import('../generated/sqlite/client.js'),
      import('@prisma/adapter-better-sqlite3'),
    ]);
    // timeout: wait for another connection's write lock instead of failing with SQLITE_BUSY. This
    // wait, SQLite's own, sleeps on the event loop; the store's waits on a timer (whenUnlocked), but
    // Prisma runs transactions, in which a statement cannot simply be run again.
    const client = new PrismaClient({ adapter: new PrismaBetterSQLite3({ url: sqliteFile(db.url), timeout: SQLITE_LOCK_WAIT_MS }) });
    // In WAL mode (set by the migrator), NORMAL skips the fsync per commit and stays corruption-safe.
    await client.$queryRawUnsafe('PRAGMA synchronous = NORMAL');
    // The store's checkpoint thread copies the log; this connection checkpoints only past the backstop.
    await client.$queryRawUnsafe(`PRAGMA wal_autocheckpoint = ${CHECKPOINT_BACKSTOP_PAGES}`);
    return client;
  }
  // Loaded only here, as the SQLite modules above are: a SQLite server starts without `pg`.
  const [{ PrismaClient }, { PrismaPg }, { boundedPool }] = await Promise.all([
    import('../generated/postgresql/client.js'),
    import('@prisma/adapter-pg'),
    import('./postgres-timeouts.js'),
  ]);
  const pool = releaseLostConnections(boundedPool({ connectionString: db.url, max: db.poolSize }, db.timeoutSeconds ?? 10));
  // disposeExternalPool: $disconnect ends the pool, as it ended the one the adapter made itself.
  const client = new PrismaClient({ adapter: new PrismaPg(pool, { disposeExternalPool: true }) });
  return client as unknown as Db;
}
