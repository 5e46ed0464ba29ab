import type pg from 'pg';

/**
 * Returns a checked-out connection to its pool when the connection is lost (the server restarted,
 * failed over or terminated it) before it was released. Prisma's PostgreSQL adapter releases a
 * transaction's connection only after its COMMIT or ROLLBACK succeeded, which they cannot on a dead
 * connection: each transaction in flight when the connection went kept a place in the pool for
 * good, and once the pool was used up every query waited out DATABASE_TIMEOUT until a restart.
 * Only connections checked out with `pool.connect()` (the transactions') are watched; `pool.query`
 * releases its own. A release after the pool took the connection back does nothing.
 */
export function releaseLostConnections(pool: pg.Pool): pg.Pool {
  const connect = pool.connect.bind(pool) as (cb?: unknown) => Promise<pg.PoolClient> | void;
  const watched = (client: pg.PoolClient) => {
    const release = client.release.bind(client);
    let released = false;
    const once = (err?: Error | boolean) => {
      if (released) return;
      released = true;
      client.removeListener('end', lost);
      release(err);
    };
    const lost = () => once(new Error('Connection lost while checked out'));
    client.once('end', lost);
    client.release = once;
    return client;
  };
  pool.connect = ((cb?: unknown) => (cb ? connect(cb) : (connect() as Promise<pg.PoolClient>).then(watched))) as typeof pool.connect;
  return pool;
}
