import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase } from '../support/database.js';
import { startTestServer, type TestServer } from '../support/server.js';
import { PASSWORD } from '../support/oidc.js';
import { SETTINGS_REFRESH_MS } from '../../src/settings/settings.service.js';

// Two servers on one database: a setting changed through one applies in the other without a restart.
let db: Awaited<ReturnType<typeof createTestDatabase>>;
let a: TestServer;
let b: TestServer;

beforeAll(async () => {
  db = await createTestDatabase();
  a = await startTestServer({}, db.url);
  b = await startTestServer({}, db.url);
  await a.users.create({ email: 'lee@example.com', password: PASSWORD });
});
afterAll(async () => {
  await a?.stop();
  await b?.stop();
  await db?.drop();
});

const login = async (server: TestServer) =>
  (await (
    await fetch(`${server.url}/api/auth/login`, { method: 'POST', body: JSON.stringify({ username: 'lee@example.com', password: PASSWORD }), headers: { 'content-type': 'application/json' } })
  ).json()) as { expires_in: number };

describe('runtime settings', () => {
  it('change token lifetimes on every instance within the refresh bound', async () => {
    expect((await login(b)).expires_in).toBe(600);
    await a.settings.update({ accessTokenTtl: 45, registrationOpen: false });
    expect((await login(a)).expires_in).toBe(45);

    // B has served nothing meanwhile: its very first answers after the bound follow the change.
    await new Promise((r) => setTimeout(r, SETTINGS_REFRESH_MS + 500));
    const closed = await fetch(`${b.url}/api/auth/register`, { method: 'POST', body: JSON.stringify({ email: 'new@example.com', password: 'violet kettle orbit 42' }), headers: { 'content-type': 'application/json' } });
    expect(closed.status).toBe(403);
    expect((await login(b)).expires_in).toBe(45);
  });

  it('keep the valid stored values when one is out of bounds', async () => {
    // As an older version with other bounds, or an edit by hand, might leave it.
    await a.prisma.setting.update({ where: { key: 'accessTokenTtl' }, data: { value: 5 } });
    const c = await startTestServer({}, db.url);
    try {
      expect(c.settings.snapshot()).toMatchObject({ accessTokenTtl: 600, registrationOpen: false });
      expect((await login(c)).expires_in).toBe(600);
      const closed = await fetch(`${c.url}/api/auth/register`, { method: 'POST', body: JSON.stringify({ email: 'other@example.com', password: 'violet kettle orbit 42' }), headers: { 'content-type': 'application/json' } });
      expect(closed.status).toBe(403);
    } finally {
      await c.stop();
    }
  });
});
