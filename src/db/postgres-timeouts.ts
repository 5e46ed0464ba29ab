import type pg from 'pg';

/**
 * What every pooled PostgreSQL connection is bounded by (DATABASE_TIMEOUT): a statement, lock
 * waits included, and the wait for a connection, new or from the pool. Without them a lock held
 * elsewhere (a migration, an operator's transaction) held every request that touched its rows, and
 * the group commits they share, until the clients gave up; now they fail with 503 and the server
 * goes on. Migrations use a connection of their own, without these bounds.
 */
export const postgresTimeouts = (seconds: number): Pick<pg.PoolConfig, 'statement_timeout' | 'connectionTimeoutMillis'> => ({
  statement_timeout: seconds * 1000,
  connectionTimeoutMillis: seconds * 1000,
});
