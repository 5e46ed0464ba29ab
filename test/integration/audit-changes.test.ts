import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../support/server.js';
import { createApiClient } from '../support/api-client.js';
import { REDIRECT_URI } from '../support/oidc.js';

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
  server = await startTestServer();
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
