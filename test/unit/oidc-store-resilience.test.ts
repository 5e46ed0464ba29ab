import { describe, expect, it } from 'vitest';
import pg from 'pg';
import { migrate } from '../../src/db/migrate.js';
import { createOidcStore } from '../../src/db/oidc-store.js';
import { prepareConnection } from '../../src/db/oidc-store-postgres.js';
import { createTestDatabase } from '../support/database.js';

describe.runIf(process.env.TEST_DATABASE_URL?.startsWith('postgres'))('the PostgreSQL store', () => {
  // First: pg warns of a deprecation once per process.
  it('prepares each new connection before its first query, without running two at once', async () => {
    const db = await createTestDatabase();
    await migrate(db.url);
    const warnings: Error[] = [];
    const onWarning = (warning: Error) => warnings.push(warning);
    process.on('warning', onWarning);
    const store = await createOidcStore('postgresql', db.url, { poolSize: 4 });
    try {
      // Four lookups at once open four connections, each prepared and then queried.
      expect(await Promise.all(['a', 'b', 'c', 'd'].map((id) => store.findClient(id)))).toEqual([undefined, undefined, undefined, undefined]);
      await new Promise((r) => setImmediate(r));
      expect(warnings.map((w) => w.message)).toEqual([]);
    } finally {
      process.off('warning', onWarning);
      await store.close();
      await db.drop();
    }
  });

  it('survives the server cutting its idle connections, and reconnects', async () => {
    const db = await createTestDatabase();
    await migrate(db.url);
    const lost: Error[] = [];
    const store = await createOidcStore('postgresql', db.url, { poolSize: 2, onError: (err) => lost.push(err) });
    try {
      expect(await store.findClient('nope')).toBeUndefined();
      const admin = new pg.Client({ connectionString: db.url });
      await admin.connect();
      await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()');
      await admin.end();
      await new Promise((r) => setTimeout(r, 200));
      expect(lost.length).toBeGreaterThan(0);
      expect(await store.findClient('nope')).toBeUndefined();
    } finally {
      await store.close();
      await db.drop();
    }
  });

  it('prepares its connections to use the generic plans of its prepared statements', async () => {
    const client = new pg.Client({ connectionString: process.env.TEST_DATABASE_URL });
    await client.connect();
    try {
      await prepareConnection(client);
      expect((await client.query<{ plan_cache_mode: string }>('SHOW plan_cache_mode')).rows[0]!.plan_cache_mode).toBe('force_generic_plan');
    } finally {
      await client.end();
    }
  });
});
