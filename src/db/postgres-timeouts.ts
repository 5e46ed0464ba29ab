import pg from 'pg';

/**
 * What every pooled PostgreSQL connection is bounded by (DATABASE_TIMEOUT, seconds; 0: unbounded).
 * Without them a lock held elsewhere (a migration, an operator's transaction) held every request
 * that touched its rows, and the group commits they share, until the clients gave up; now they
 * fail with 503 and the server goes on. Migrations use a connection of their own, without these.
 *
 * - The wait for a connection, new or from the pool (pg's connectionTimeoutMillis).
 * - A statement, lock waits included: `statement_timeout`, set on each new connection with `SET`
 *   rather than as a startup parameter, which PgBouncer refuses ("unsupported startup parameter").
 *   A server or pooler that refuses the SET keeps its default.
 * - With `singleStatements` (a pool that runs no transactions: the store's), the wait for an
 *   answer at all (pg's query_timeout, a little longer), for a host that went silent, where the
 *   server's own timeout cannot fire; the pool then drops the connection. Not for Prisma's pool:
 *   there it left a transaction open, its ROLLBACK never sent, holding its locks (the last-admin
 *   and start-up locks among them) once the host answered again.
 * - TCP keep-alive, so a connection to a host that vanished is found dead in the end.
 */
export function postgresTimeouts(seconds: number, singleStatements = false): Pick<pg.PoolConfig, 'connectionTimeoutMillis' | 'query_timeout' | 'keepAlive'> {
  if (!seconds) return { keepAlive: true };
  return { keepAlive: true, connectionTimeoutMillis: seconds * 1000, ...(singleStatements ? { query_timeout: seconds * 1000 + 2000 } : {}) };
}

/** The statement bound a new connection sets for itself (see postgresTimeouts). */
export const setStatementTimeout = (client: pg.ClientBase, seconds: number) => client.query(`SET statement_timeout = ${Math.trunc(seconds) * 1000}`);

/** A pool of bounded connections, each prepared by `prepare` (settings that may be refused: it keeps its defaults). */
export function boundedPool(config: pg.PoolConfig, seconds: number, options: { singleStatements?: boolean; prepare?: (client: pg.ClientBase) => Promise<unknown> } = {}) {
  const { singleStatements = false, prepare = async () => {} } = options;
  return new pg.Pool({
    ...config,
    ...postgresTimeouts(seconds, singleStatements),
    // A pool hands a new connection out once `onConnect` has settled, so the settings come before
    // its first query (a 'connect' listener's query would run beside it, which pg deprecates).
    onConnect: async (client: pg.ClientBase) => {
      await setStatementTimeout(client, seconds).catch(() => {});
      await prepare(client).catch(() => {});
    },
  } as pg.PoolConfig);
}
