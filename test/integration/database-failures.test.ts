import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import Database from 'better-sqlite3';
import pg from 'pg';
import { startTestServer, type TestServer } from '../support/server.js';
import { createTestDatabase, refuseChanges } from '../support/database.js';
import { PASSWORD, seed } from '../support/oidc.js';
import { createUserAgent, findForm } from '../support/user-agent.js';
import { providerOf, sqliteFile } from '../../src/db/url.js';

// What clients get while the database cannot store or serve: an answer they can act on (500, or
// 503 with Retry-After to try again), in the format of the endpoint, and a sign-in that survives
// the failure: a refresh whose new tokens were never stored may be sent again.

let server: TestServer;
let fixtures: Awaited<ReturnType<typeof seed>>;
let db: Awaited<ReturnType<typeof createTestDatabase>>;
const postgres = () => providerOf(db.url) === 'postgresql';

beforeAll(async () => {
  db = await createTestDatabase();
  // A short bound on PostgreSQL statements, so a held lock fails requests quickly.
  server = await startTestServer({ DATABASE_TIMEOUT: '1' }, db.url);
  fixtures = await seed(server);
});
afterAll(async () => {
  await server?.stop();
  await db?.drop();
});

const login = async () => {
  const res = await fetch(`${server.url}/api/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'ada', password: PASSWORD }) });
  expect(res.status).toBe(200);
  return (await res.json()) as { access_token: string; refresh_token: string };
};
const refreshAtTokenEndpoint = (refreshToken: string) =>
  fetch(`${server.issuer}/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' }, body: new URLSearchParams({ grant_type: 'refresh_token', client_id: 'latch-api', refresh_token: refreshToken }) });
const refreshAtApi = (refreshToken: string) =>
  fetch(`${server.url}/api/auth/refresh`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ refresh_token: refreshToken }) });
const meStatus = async (token: string) => (await fetch(`${server.url}/api/me`, { headers: { authorization: `Bearer ${token}` } })).status;

const refuse = (change: 'INSERT' | 'UPDATE', table: string, when?: string) => refuseChanges(server, change, table, when);
const refuseNewRefreshTokens = () => refuse('INSERT', 'oidc_payloads', "NEW.model = 'RefreshToken'");

/**
 * Holds a lock on the provider's table from another connection, as a migration or an operator
 * might, until released. On PostgreSQL `readsPass` takes one that lets reads through, as SQLite's
 * write lock does.
 */
async function holdLock({ readsPass = false } = {}): Promise<() => Promise<unknown>> {
  if (postgres()) {
    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    await client.query('BEGIN');
    await client.query(`LOCK TABLE oidc_payloads IN ${readsPass ? 'EXCLUSIVE' : 'ACCESS EXCLUSIVE'} MODE`);
    return async () => {
      await client.query('ROLLBACK');
      await client.end();
    };
  }
  const other = new Database(sqliteFile(db.url));
  other.exec('BEGIN EXCLUSIVE');
  return async () => {
    other.exec('ROLLBACK');
    other.close();
  };
}

/** The answers to `requests`, sent while `failure` lasts; the database recovers before this returns. */
async function during<T>(failure: () => Promise<() => Promise<unknown>>, requests: () => Promise<T>): Promise<T> {
  const recover = await failure();
  try {
    return await requests();
  } finally {
    await recover();
  }
}

describe('when the database refuses what a refresh issued', () => {
  it('answers 500 in the OAuth format, and the same refresh token works once the database is back: the sign-in is not revoked', async () => {
    const tokens = await login();
    const failed = await during(refuseNewRefreshTokens, () => refreshAtTokenEndpoint(tokens.refresh_token));
    expect(failed.status).toBe(500);
    expect(failed.headers.get('content-type')).toMatch(/application\/json/);
    expect(await failed.json()).toMatchObject({ error: 'server_error' });

    // The retry is not a replay: it gets a new pair, and the sign-in goes on.
    const retried = await refreshAtTokenEndpoint(tokens.refresh_token);
    expect(retried.status).toBe(200);
    const next = (await retried.json()) as { access_token: string; refresh_token: string };
    expect(await meStatus(next.access_token)).toBe(200);
    expect((await refreshAtTokenEndpoint(next.refresh_token)).status).toBe(200);
  });

  it('answers /api/auth/refresh with a 500 problem, not a 400 that blames the client, and the retry works', async () => {
    const tokens = await login();
    const failed = await during(refuseNewRefreshTokens, () => refreshAtApi(tokens.refresh_token));
    expect(failed.status).toBe(500);
    expect(failed.headers.get('content-type')).toMatch(/problem\+json/);
    expect(await failed.json()).toMatchObject({ code: 'INTERNAL' });
    expect((await refreshAtApi(tokens.refresh_token)).status).toBe(200);
  });
});

describe('when the database refuses what an emailed sign-in link was exchanged for', () => {
  it('answers 500 and gives the link back: it still signs the user in once the database is back', async () => {
    const token = await server.tokens.issue('magic-link', { userId: fixtures.user.id, email: fixtures.user.email, ttlSeconds: 900 });
    const verify = () => fetch(`${server.url}/api/auth/magic-link/verify`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token }) });
    const failed = await during(refuseNewRefreshTokens, verify);
    expect(failed.status).toBe(500);
    const retried = await verify();
    expect(retried.status).toBe(200);
    expect(await meStatus(((await retried.json()) as { access_token: string }).access_token)).toBe(200);
    // Single use as ever once it worked.
    expect((await verify()).status).toBe(400);
  });

  it('on its page too: the failed sign-in answers 500, and the same link then signs the user in', async () => {
    const token = await server.tokens.issue('magic-link', { userId: fixtures.user.id, email: fixtures.user.email, ttlSeconds: 900 });
    const agent = createUserAgent();
    const page = await agent.navigate(`${server.url}/magic-link?token=${token}`);
    // Using the link marks the address proven, an update of the user's row. The form's path with
    // a trailing slash reaches the same page, and fails the same way.
    const { hidden } = findForm(page.html, '/magic-link');
    const postTo = (path: string) => agent.navigate(`${server.url}${path}`, { method: 'POST', body: new URLSearchParams(hidden), headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    for (const path of ['/magic-link', '/magic-link/']) {
      const failed = await during(() => refuse('UPDATE', 'users'), () => postTo(path));
      expect(failed.status).toBe(500);
    }
    const retried = await agent.submit(page, '/magic-link');
    expect(retried.url).toBe(`${server.url}/account`);
    expect(retried.html).toContain('Signed in as <strong>Ada@Example.com</strong>');
    expect((await agent.submit(page, '/magic-link')).status).toBe(400);
  });
});

describe('DATABASE_TIMEOUT', () => {
  // Set on each connection with SET, not as a startup parameter, which PgBouncer refuses.
  it.skipIf(!process.env.TEST_DATABASE_URL)('bounds the statements of both pools on PostgreSQL', async () => {
    const [shown] = await server.prisma.$queryRawUnsafe<{ statement_timeout: string }[]>('SHOW statement_timeout');
    expect(shown?.statement_timeout).toBe('1s');
  });
});

describe('when the database is locked by someone else', () => {
  it('answers 503 with Retry-After, in each endpoint format, and serves again once the lock is gone', { timeout: 30_000 }, async () => {
    const tokens = await login();
    const [token, api] = await during(holdLock, async () => [await refreshAtTokenEndpoint(tokens.refresh_token), await refreshAtApi(tokens.refresh_token)]);
    expect(token.status).toBe(503);
    expect(token.headers.get('retry-after')).toBe('5');
    expect(await token.json()).toMatchObject({ error: 'temporarily_unavailable' });
    expect(api.status).toBe(503);
    expect(api.headers.get('retry-after')).toBe('5');
    expect(await api.json()).toMatchObject({ code: 'SERVICE_UNAVAILABLE' });

    // Nothing was lost: the same refresh token still works.
    const retried = await refreshAtApi(tokens.refresh_token);
    expect(retried.status).toBe(200);
    expect(await meStatus(((await retried.json()) as { access_token: string }).access_token)).toBe(200);
  });

  it('answers the writes that wait for it together, not one wait after another, and serves reads meanwhile', { timeout: 60_000 }, async () => {
    const { clientId, clientSecret } = fixtures.confidential;
    const authorization = `Basic ${Buffer.from(`${clientId}:${clientSecret}`).toString('base64')}`;
    const form = (path: string, body: Record<string, string>) =>
      fetch(`${server.issuer}${path}`, { method: 'POST', headers: { authorization, 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(body) });
    const { access_token } = (await (await form('/token', { grant_type: 'client_credentials' })).json()) as { access_token: string };

    const answered: { what: string; status: number; at: number }[] = [];
    const note = (what: string) => (res: Response) => answered.push({ what, status: res.status, at: performance.now() });
    await during(
      () => holdLock({ readsPass: true }),
      async () => {
        const writes = Array.from({ length: 10 }, () => form('/token', { grant_type: 'client_credentials' }).then(note('write')));
        // The writes are waiting for the lock by now (SQLite's wait is 5 s, DATABASE_TIMEOUT 1 s here).
        await new Promise((resolve) => setTimeout(resolve, 300));
        const read = form('/token/introspection', { token: access_token }).then(note('read'));
        await Promise.all([...writes, read]);
      },
    );

    // The read did not wait behind the writes' wait, which once stopped the whole process on SQLite.
    expect(answered[0]).toMatchObject({ what: 'read', status: 200 });
    const writes = answered.filter((a) => a.what === 'write');
    expect(writes.map((w) => w.status)).toEqual(Array(10).fill(503));
    // Together: not each after a wait of its own, which took 10 waits for the last. (On PostgreSQL
    // a group may first wait for one of the pool's connections, each held by a waiting statement.)
    const spread = Math.max(...writes.map((w) => w.at)) - Math.min(...writes.map((w) => w.at));
    expect(spread).toBeLessThan(postgres() ? 2 * 1000 : 5000);
    expect((await form('/token', { grant_type: 'client_credentials' })).status).toBe(200);
  });
});
