import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { startTestServer, type TestServer } from '../support/server.js';
import { createApiClient } from '../support/api-client.js';
import { PASSWORD, REDIRECT_URI } from '../support/oidc.js';
import { createUserAgent } from '../support/user-agent.js';

// What an edit by an admin, staff, a developer or an API key changed, as the audit log keeps it:
// each changed field from its old to its new value, and for secrets only that they changed.

let server: TestServer;
const t = {} as { admin: string; dev: string };

const { unique, call, json, login, makeUser, makeApp, makeKey } = createApiClient(() => server);
type AuditEvent = { event: string; userId: string | null; actorId: string | null; detail: Record<string, any> };

/** The newest events named `event` (of one user, if given), as the API lists them. */
async function events(event: string, userId?: string) {
  const query = new URLSearchParams({ event, ...(userId ? { userId } : {}) });
  return ((await json(await call('GET', `/api/audit?${query}`, t.admin))) as { items: AuditEvent[] }).items;
}
const latest = async (event: string, userId?: string) => (await events(event, userId))[0]!;

beforeAll(async () => {
  server = await startTestServer({ CONNECTION_SECRET_KEYS: randomBytes(32).toString('base64') });
  const [admin, dev] = await Promise.all([makeUser({ isAdmin: true, isStaff: true }), makeUser({ isDeveloper: true })]);
  Object.assign(t, { admin: (await login(admin.username)).access_token, dev: (await login(dev.username)).access_token });
});
afterAll(() => server?.stop());

describe('users edited through /api/users', () => {
  it('records a role change from its old to its new value, and nothing for a field sent unchanged', async () => {
    const user = await makeUser();
    const res = await call('PATCH', `/api/users/${user.id}`, t.admin, { isAdmin: true, isStaff: false, givenName: 'Ada' });
    expect(res.status, await res.clone().text()).toBe(200);
    expect(await latest('admin.user_updated', user.id)).toMatchObject({
      detail: { fields: ['givenName', 'isAdmin', 'isStaff'], changes: { isAdmin: { from: false, to: true }, givenName: { from: null, to: 'Ada' } } },
    });
    expect((await latest('admin.user_updated', user.id)).detail.changes).not.toHaveProperty('isStaff');

    expect((await call('PATCH', `/api/users/${user.id}`, t.admin, { isAdmin: false })).status).toBe(200);
    expect((await latest('admin.user_updated', user.id)).detail.changes).toEqual({ isAdmin: { from: true, to: false } });
  });

  it('records a user\'s edit of their own profile the same way', async () => {
    const user = await makeUser();
    const token = (await login(user.username)).access_token;
    expect((await call('PATCH', '/api/me', token, { givenName: 'Grace', familyName: user.familyName ?? null })).status).toBe(200);
    expect((await latest('account.updated', user.id)).detail.changes).toEqual({ givenName: { from: user.givenName ?? null, to: 'Grace' } });
  });

  it('records what follows from an edit: a new email is unverified', async () => {
    const user = await makeUser();
    const email = `${unique('moved')}@example.com`;
    expect((await call('PATCH', `/api/users/${user.id}`, t.admin, { email })).status).toBe(200);
    expect((await latest('admin.user_updated', user.id)).detail.changes).toEqual({
      email: { from: user.email, to: email },
      emailVerified: { from: true, to: false },
    });
  });

  it('records that a password changed, never the password or its hash', async () => {
    const user = await makeUser();
    const password = 'violet harbour compass 42';
    expect((await call('PATCH', `/api/users/${user.id}`, t.admin, { password })).status).toBe(200);
    const event = await latest('admin.user_updated', user.id);
    expect(event.detail).toEqual({ fields: ['password'], changes: { password: { changed: true } } });
    const { passwordHash } = (await server.prisma.user.findUnique({ where: { id: user.id } }))!;
    const stored = JSON.stringify(await server.prisma.auditEvent.findMany({ where: { userId: user.id } }));
    expect(stored).not.toContain(password);
    expect(stored).not.toContain(passwordHash!);
    expect(stored).not.toContain(user.passwordHash!);
  });
});

describe('apps edited through /api/apps', () => {
  it("records an added redirect URI as the list before and after, with the developer as actor", async () => {
    const app = await makeApp(t.dev);
    const redirectUris = [REDIRECT_URI, 'https://shop.example/callback'];
    const res = await call('PATCH', `/api/apps/${app.clientId}`, t.dev, { redirectUris, name: app.name });
    expect(res.status, await res.clone().text()).toBe(200);
    const event = await latest('admin.app_updated');
    expect(event.actorId).toBe(app.ownerId);
    // The name was sent but did not change: it is among the fields sent, not among the changes.
    expect(event.detail).toEqual({ clientId: app.clientId, fields: ['name', 'redirectUris'], changes: { redirectUris: { from: [REDIRECT_URI], to: redirectUris } } });
  });

  it("records an API key's rename with the app as actor", async () => {
    const app = await makeApp(t.dev);
    const key = await makeKey(app.clientId, t.dev);
    const name = unique('Renamed ');
    expect((await call('PATCH', `/api/apps/${app.clientId}`, key, { name })).status).toBe(200);
    expect(await latest('admin.app_updated')).toMatchObject({ actorId: `client:${app.clientId}`, detail: { changes: { name: { from: app.name, to: name } } } });
  });

  it('records that a secret was rotated, never the secret or its digest', async () => {
    const app = await makeApp(t.dev);
    const digest = async () => ((await server.prisma.client.findUnique({ where: { clientId: app.clientId } }))!.metadata as { client_secret: string }).client_secret;
    const oldDigest = await digest();
    const res = await call('POST', `/api/apps/${app.clientId}/secret`, t.dev);
    expect(res.status, await res.clone().text()).toBe(200);
    const { clientSecret } = await json(res);
    expect(await latest('admin.app_secret_rotated')).toMatchObject({ actorId: app.ownerId, detail: { clientId: app.clientId, changes: { clientSecret: { changed: true } } } });
    const stored = JSON.stringify(await server.prisma.auditEvent.findMany({ where: { event: { startsWith: 'admin.app' } } }));
    for (const secret of [clientSecret, app.clientSecret, await digest(), oldDigest]) expect(stored).not.toContain(secret);
  });
});

describe('upstream connections edited through the API', () => {
  it('records changed endpoints from old to new, and a new client secret only as changed', async () => {
    const slug = unique('ghe-');
    const created = await json(await call('POST', '/api/connections', t.admin, { kind: 'github', slug, name: 'GitHub', clientId: 'Iv1.abc', clientSecret: 'first-upstream-secret' }));
    const tokenUrl = 'https://ghe.example/login/oauth/access_token';
    const res = await call('PATCH', `/api/connections/${created.id}`, t.admin, { clientSecret: 'second-upstream-secret', tokenUrl, name: 'GitHub' });
    expect(res.status, await res.clone().text()).toBe(200);
    expect((await latest('admin.connection_updated')).detail).toEqual({
      connectionId: created.id,
      fields: ['name', 'clientSecret', 'tokenUrl'],
      changes: { clientSecret: { changed: true }, tokenUrl: { from: null, to: tokenUrl } },
    });
    const row = await server.prisma.connection.findUniqueOrThrow({ where: { id: created.id } });
    const stored = JSON.stringify(await server.prisma.auditEvent.findMany({ where: { event: { startsWith: 'admin.connection' } } }));
    for (const secret of ['first-upstream-secret', 'second-upstream-secret', row.clientSecret!]) expect(stored).not.toContain(secret);
  });

  it("records an app's own connection edited by its developer: scopes and claim mapping before and after", async () => {
    const app = await makeApp(t.dev);
    const own = await json(await call('POST', `/api/apps/${app.clientId}/connections`, t.dev, { kind: 'oauth2', slug: unique('own-'), name: 'Own', clientId: 'c', authorizationUrl: 'https://own.example/authorize', tokenUrl: 'https://own.example/token', userinfoUrl: 'https://own.example/me' }));
    const patch = { scopes: ['read', 'email'], claimMapping: { subject: 'data.uid' }, enabled: false };
    expect((await call('PATCH', `/api/apps/${app.clientId}/connections/${own.id}`, t.dev, patch)).status).toBe(200);
    expect(await latest('admin.connection_updated')).toMatchObject({
      actorId: app.ownerId,
      detail: { connectionId: own.id, clientId: app.clientId, changes: { scopes: { from: [], to: ['read', 'email'] }, claimMapping: { from: {}, to: { subject: 'data.uid' } }, enabled: { from: true, to: false } } },
    });
  });
});

describe('runtime settings edited through /api/settings', () => {
  it('records each changed setting from its old to its new value, read afresh', async () => {
    const before = await json(await call('GET', '/api/settings', t.admin));
    // Another process changed it a moment ago: the log shows the value it replaced, not a stale copy.
    await server.prisma.setting.upsert({ where: { key: 'idTokenTtl' }, create: { key: 'idTokenTtl', value: 700 }, update: { value: 700 } });
    const res = await call('PATCH', '/api/settings', t.admin, { idTokenTtl: 900, registrationOpen: before.registrationOpen });
    expect(res.status, await res.clone().text()).toBe(200);
    expect((await latest('admin.settings_updated')).detail).toEqual({ idTokenTtl: 900, registrationOpen: before.registrationOpen, changes: { idTokenTtl: { from: 700, to: 900 } } });
    expect((await call('PATCH', '/api/settings', t.admin, { idTokenTtl: before.idTokenTtl })).status).toBe(200);
  });
});

describe('the console', () => {
  /** An admin's browser, signed in on the console page `path`. */
  async function openConsole(path: string) {
    const admin = await makeUser({ isAdmin: true, isStaff: true });
    const agent = createUserAgent();
    const page = await agent.submit(await agent.navigate(`${server.url}${path}`), '/login', { login: admin.username, password: PASSWORD });
    expect(page.url).toBe(`${server.url}${path}`);
    return { agent, page, admin };
  }

  it("records a redirect URI added on an app's page, and its audit log shows the change in words, escaped", async () => {
    const app = await server.clients.create({ name: 'Shop <b>', redirectUris: ['https://shop.example/cb'], grantTypes: ['authorization_code'] });
    const { agent, page, admin } = await openConsole(`/admin/apps/${app.clientId}`);
    const added = 'https://shop.example/cb2?a=1&b=2';
    const saved = await agent.submit(page, `/admin/apps/${app.clientId}`, {
      name: 'Shop <i>new</i>',
      redirectUris: `https://shop.example/cb\n${added}`,
      grantTypes: 'authorization_code',
      scopes: 'openid profile email offline_access',
    });
    expect(saved.html).toContain('The changes are saved.');
    expect(await latest('admin.app_updated')).toMatchObject({
      actorId: admin.id,
      // The console sends every field of the form; only those that changed are among the changes.
      detail: { clientId: app.clientId, changes: { name: { from: 'Shop <b>', to: 'Shop <i>new</i>' }, redirectUris: { from: ['https://shop.example/cb'], to: ['https://shop.example/cb', added] } } },
    });
    expect(Object.keys((await latest('admin.app_updated')).detail.changes)).toEqual(['name', 'redirectUris']);

    const log = await agent.navigate(`${server.url}/admin/audit?event=admin.app_updated`);
    expect(log.status).toBe(200);
    expect(log.html).toContain('<code>redirectUris</code>: added https://shop.example/cb2?a=1&amp;b=2</li>');
    expect(log.html).toContain('<code>name</code>: Shop &lt;b&gt; → Shop &lt;i&gt;new&lt;/i&gt;</li>');
    expect(log.html).not.toContain('<i>new</i>');
  });

  it('shows a password change as changed, with no value', async () => {
    const user = await makeUser();
    expect((await call('PATCH', `/api/users/${user.id}`, t.admin, { password: 'amber meadow kettle 8', isStaff: true })).status).toBe(200);
    const { page } = await openConsole(`/admin/audit?user=${user.id}&event=admin.user_updated`);
    expect(page.html).toContain('<code>password</code>: changed (the value is not recorded)</li>');
    expect(page.html).toContain('<code>isStaff</code>: false → true</li>');
    expect(page.html).not.toContain('amber meadow kettle 8');
  });
});
