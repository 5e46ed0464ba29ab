import { describe, expect, it } from 'vitest';
import pg from 'pg';
import { migrate } from '../../src/db/migrate.js';
import { createOidcStore, type StoreWrite } from '../../src/db/oidc-store.js';
import { mayCommitUnflushed, prepareUnflushedConnection, UNFLUSHED_APPLICATION_NAME } from '../../src/db/oidc-store-postgres.js';
import { createTestDatabase } from '../support/database.js';

const columns = { grantId: null, uid: null, userCode: null, accountId: null, clientId: 'app', expiresAt: new Date(Date.now() + 600_000), consumedAt: null };
const up = (model: string, id: string): StoreWrite => ({ kind: 'upsert', model, id, json: JSON.stringify({ jti: id }), columns });

describe('commits that need not wait for the WAL flush', () => {
  it('are those that only issue access or client-credentials tokens', () => {
    expect(mayCommitUnflushed([up('ClientCredentials', 'a')])).toBe(true);
    expect(mayCommitUnflushed([up('AccessToken', 'a'), up('AccessToken', 'b')])).toBe(true);
    // A refresh token, a grant, a session or a code must survive a crash, and so must a revocation.
    expect(mayCommitUnflushed([up('AccessToken', 'a'), up('RefreshToken', 'b')])).toBe(false);
    expect(mayCommitUnflushed([up('AccessToken', 'a'), up('Grant', 'g')])).toBe(false);
    expect(mayCommitUnflushed([up('Session', 's')])).toBe(false);
    expect(mayCommitUnflushed([up('AuthorizationCode', 'c')])).toBe(false);
    expect(mayCommitUnflushed([{ kind: 'destroy', model: 'AccessToken', id: 'a' }])).toBe(false);
  });
});

describe.runIf(process.env.TEST_DATABASE_URL?.startsWith('postgres'))('PostgreSQL with DATABASE_ASYNC_TOKEN_COMMIT', () => {
  it('sets its own connections not to wait for the flush, with the hot path’s plan setting', async () => {
    const client = new pg.Client({ connectionString: process.env.TEST_DATABASE_URL });
    await client.connect();
    try {
      await prepareUnflushedConnection(client);
      const { rows } = await client.query<{ sc: string; pcm: string }>("SELECT current_setting('synchronous_commit') AS sc, current_setting('plan_cache_mode') AS pcm");
      expect(rows[0]).toEqual({ sc: 'off', pcm: 'force_generic_plan' });
    } finally {
      await client.end();
    }
  });

  type Store = Awaited<ReturnType<typeof createOidcStore>>;
  /** A store on a new database, and a connection of the test's own to watch the server with. */
  async function withStore(options: { asyncTokenCommit: boolean; onError?: (err: Error) => void }, run: (store: Store, admin: pg.Client) => Promise<void>) {
    const db = await createTestDatabase();
    await migrate(db.url);
    const store = await createOidcStore('postgresql', db.url, { poolSize: 2, ...options });
    const admin = new pg.Client({ connectionString: db.url });
    await admin.connect();
    try {
      await run(store, admin);
    } finally {
      await admin.end();
      await store.close();
      await db.drop();
    }
  }
  const unflushedBackends = async (admin: pg.Client) =>
    (await admin.query('SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1', [UNFLUSHED_APPLICATION_NAME])).rows[0].n as number;

  it('stores issued tokens on connections of their own and everything else on the others, readable at once', async () => {
    await withStore({ asyncTokenCommit: true }, async (store, admin) => {
      await store.writeBatch([up('Session', 's1')]);
      expect(await unflushedBackends(admin)).toBe(0);
      // Client credentials from many requests, alongside a batch that must wait for the flush.
      await Promise.all([...Array.from({ length: 20 }, (_, i) => store.writeBatch([up('ClientCredentials', `cc${i}`)])), store.writeBatch([up('AccessToken', 'at'), up('RefreshToken', 'rt')])]);
      expect(await unflushedBackends(admin)).toBeGreaterThan(0);
      const found = await store.findMany([{ model: 'ClientCredentials', id: 'cc19' }, { model: 'RefreshToken', id: 'rt' }, { model: 'AccessToken', id: 'at' }]);
      expect(found.map((row) => row?.payload.jti)).toEqual(['cc19', 'rt', 'at']);
      // Revoked: the destroy waits for the flush, and the token is gone.
      await store.writeBatch([{ kind: 'destroy', model: 'ClientCredentials', id: 'cc19' }]);
      expect(await store.findMany([{ model: 'ClientCredentials', id: 'cc19' }])).toEqual([undefined]);
    });
  });

  it('commits a closing store’s waiting token writes too', async () => {
    const db = await createTestDatabase();
    await migrate(db.url);
    const store = await createOidcStore('postgresql', db.url, { poolSize: 1, asyncTokenCommit: true, commitWindowMs: 50 });
    const written = store.writeBatch([up('ClientCredentials', 'late')]);
    await store.close();
    await written;
    const admin = new pg.Client({ connectionString: db.url });
    await admin.connect();
    try {
      expect((await admin.query("SELECT id FROM oidc_payloads WHERE model = 'ClientCredentials'")).rows).toEqual([{ id: 'late' }]);
    } finally {
      await admin.end();
      await db.drop();
    }
  });

  it('replaces its connections when the server cuts them, as the other pool does', async () => {
    const lost: Error[] = [];
    await withStore({ asyncTokenCommit: true, onError: (err) => lost.push(err) }, async (store, admin) => {
      await store.writeBatch([up('ClientCredentials', 'before')]);
      await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()', [UNFLUSHED_APPLICATION_NAME]);
      await new Promise((r) => setTimeout(r, 200));
      expect(lost.length).toBeGreaterThan(0);
      await store.writeBatch([up('ClientCredentials', 'after')]);
      expect((await store.findMany([{ model: 'ClientCredentials', id: 'after' }]))[0]?.payload.jti).toBe('after');
    });
  });

  it('opens no such connections when turned off', async () => {
    await withStore({ asyncTokenCommit: false }, async (store, admin) => {
      await store.writeBatch([up('ClientCredentials', 'cc')]);
      expect(await unflushedBackends(admin)).toBe(0);
      expect((await store.findMany([{ model: 'ClientCredentials', id: 'cc' }]))[0]?.payload.jti).toBe('cc');
    });
  });
});
