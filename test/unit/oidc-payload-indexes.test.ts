import Database from 'better-sqlite3';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate } from '../../src/db/migrate.js';
import { sqliteFile } from '../../src/db/url.js';
import { createTestDatabase } from '../support/database.js';

// The provider table's lookup columns are empty on most rows, so their indexes hold only rows with
// a value (migration 0006). A lookup must still be served by them: `column = value` implies the
// index's `column IS NOT NULL`, and these are the shapes the stores and services query with.
const PARTIAL = ['grant_id', 'uid', 'user_code', 'account_id'];
const LOOKUPS: [string, string][] = [
  ['grant_id', "DELETE FROM oidc_payloads WHERE grant_id = $1 AND model IN ('AccessToken', 'RefreshToken')"],
  ['uid', "SELECT payload FROM oidc_payloads WHERE model = 'Session' AND uid = $1 LIMIT 1"],
  ['user_code', "SELECT payload FROM oidc_payloads WHERE model = 'DeviceCode' AND user_code = $1 LIMIT 1"],
  ['account_id', 'DELETE FROM oidc_payloads WHERE account_id = $1'],
];

describe('the provider table’s lookup indexes', () => {
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  let definition: (column: string) => Promise<string>;
  let plan: (sql: string) => Promise<string>;
  let close: () => Promise<void>;

  beforeAll(async () => {
    db = await createTestDatabase();
    await migrate(db.url);
    if (db.url.startsWith('postgres')) {
      const client = new pg.Client({ connectionString: db.url });
      await client.connect();
      // Many rows, most without a value, as in production: a planner may scan a tiny table.
      await client.query(`INSERT INTO oidc_payloads (model, id, payload, grant_id, uid, account_id, client_id)
        SELECT 'AccessToken', 'at' || i, '{}', CASE WHEN i % 10 = 0 THEN 'g' || i END, NULL, CASE WHEN i % 10 = 0 THEN 'a' || i END, 'c'
        FROM generate_series(1, 5000) i`);
      await client.query(`INSERT INTO oidc_payloads (model, id, payload, uid, user_code, account_id)
        SELECT CASE WHEN i % 4 = 0 THEN 'DeviceCode' ELSE 'Session' END, 's' || i, '{}', CASE WHEN i % 4 <> 0 THEN 'u' || i END,
          CASE WHEN i % 4 = 0 THEN 'c' || i END, 'a' || i
        FROM generate_series(1, 2000) i`);
      await client.query('ANALYZE oidc_payloads');
      definition = async (column) =>
        (await client.query<{ indexdef: string }>('SELECT indexdef FROM pg_indexes WHERE indexname = $1', [`oidc_payloads_${column}_idx`])).rows[0]!.indexdef;
      // Generic plans, as the store's prepared statements run (see prepareConnection).
      plan = async (sql) => {
        await client.query('SET plan_cache_mode = force_generic_plan');
        await client.query('DEALLOCATE ALL');
        await client.query(`PREPARE lookup(text) AS ${sql}`);
        return (await client.query<{ 'QUERY PLAN': string }>("EXPLAIN EXECUTE lookup('x')")).rows.map((r) => r['QUERY PLAN']).join('\n');
      };
      close = () => client.end();
    } else {
      const sqlite = new Database(sqliteFile(db.url));
      definition = async (column) => sqlite.prepare<[string], { sql: string }>('SELECT sql FROM sqlite_master WHERE name = ?').get(`oidc_payloads_${column}_idx`)!.sql;
      plan = async (sql) =>
        sqlite
          .prepare<[string], { detail: string }>(`EXPLAIN QUERY PLAN ${sql.replace('$1', '?')}`)
          .all('x')
          .map((r) => r.detail)
          .join('\n');
      close = async () => void sqlite.close();
    }
  });

  afterAll(async () => {
    await close();
    await db.drop();
  });

  it('index only the rows that have a value', async () => {
    for (const column of PARTIAL) expect(await definition(column)).toMatch(new RegExp(`WHERE \\(?"?${column}"? IS NOT NULL\\)?`));
  });

  it.each(LOOKUPS)('serve lookups by %s', async (column, sql) => {
    expect(await plan(sql)).toContain(`oidc_payloads_${column}_idx`);
  });
});
