import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as oidc from 'openid-client';
import { startTestServer, type TestServer } from '../support/server.js';
import { PASSWORD, REDIRECT_URI, relyingParty, seed, signIn } from '../support/oidc.js';
import { createApiClient, type ApiApp as App } from '../support/api-client.js';
import { createUserAgent } from '../support/user-agent.js';

// /api/apps: developers own OIDC clients; names are unique per owner; privileged settings are for
// admins; an API key acts for its own app only; secrets and keys are shown once and rotate at once.

let server: TestServer;
let fixtures: Awaited<ReturnType<typeof seed>>;
const t = {} as { admin: string; staff: string; user: string; dev: string; dev2: string };
const ids = {} as { dev: string; dev2: string; adminLogin: string };

const api = createApiClient(() => server, { expectBearerChallenge: true });
const { unique, call, json, expectProblem, makeUser, makeApp, makeKey } = api;
const login = async (username: string) => (await api.login(username)).access_token;
const read = async (appId: string) => call('GET', `/api/apps/${appId}`, t.admin);
/** Signs a fresh user in to the app through the code flow; returns the user and their tokens. */
async function signInTo(app: App) {
  const u = await makeUser();
  const tokens = await (await signIn(await relyingParty(server, app), { login: u.username })).tokens();
  return { user: u, tokens };
}
/** A client-credentials request at /o/token, answering the OAuth status and error, and the token. */
async function tokenRequest(clientId: string, clientSecret: string, scope?: string) {
  const res = await fetch(`${server.issuer}/token`, {
    method: 'POST',
    headers: { authorization: `Basic ${Buffer.from(`${clientId}:${clientSecret}`).toString('base64')}`, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'client_credentials', ...(scope ? { scope } : {}) }),
  });
  const body = (await res.json()) as { access_token?: string; error?: string; scope?: string };
  return { status: res.status, error: body.error, ok: Boolean(body.access_token), token: body.access_token ?? '', scope: body.scope };
}
const introspect = async (token: string) => (await oidc.tokenIntrospection(await relyingParty(server, fixtures.confidential), token)).active;

beforeAll(async () => {
  server = await startTestServer();
  fixtures = await seed(server);
  const [admin, staff, user, dev, dev2] = await Promise.all([makeUser({ isAdmin: true, isStaff: true }), makeUser({ isStaff: true }), makeUser(), makeUser({ isDeveloper: true }), makeUser({ isDeveloper: true })]);
  Object.assign(ids, { dev: dev.id, dev2: dev2.id, adminLogin: admin.username });
  Object.assign(t, { admin: await login(admin.username), staff: await login(staff.username), user: await login(user.username), dev: await login(dev.username), dev2: await login(dev2.username) });
});
afterAll(() => server?.stop());

describe('creating apps', () => {
  it('gives a developer 201 and the secret once; reads never show it', async () => {
    const app = await makeApp(t.dev);
    expect(app).toMatchObject({ ownerId: ids.dev, public: false, trusted: false, redirectUris: [REDIRECT_URI] });
    expect(app.clientSecret).toEqual(expect.any(String));
    const one = await (await call('GET', `/api/apps/${app.clientId}`, t.dev)).text();
    const list = await (await call('GET', '/api/apps', t.dev)).text();
    for (const body of [one, list]) {
      expect(body).toContain(app.clientId);
      expect(body).not.toContain(app.clientSecret);
      expect(body).not.toMatch(/clientSecret|client_secret/);
    }
    // The secret shown is the one that works.
    expect((await oidc.clientCredentialsGrant(await relyingParty(server, app))).access_token).toBeTruthy();
  });

  it('gives a public app no secret, and refuses to rotate one (400)', async () => {
    const app = await makeApp(t.dev, { public: true, grantTypes: ['authorization_code'] });
    expect(app).toMatchObject({ public: true });
    expect(app.clientSecret).toBeUndefined();
    await expectProblem(await call('POST', `/api/apps/${app.clientId}/secret`, t.dev), 400, 'VALIDATION_FAILED');
  });

  it('keeps names unique per owner (409 APP_NAME_TAKEN); another developer may reuse a name', async () => {
    const name = unique('Shared ');
    await makeApp(t.dev, { name });
    await expectProblem(await call('POST', '/api/apps', t.dev, { name, redirectUris: [REDIRECT_URI] }), 409, 'APP_NAME_TAKEN');
    await expectProblem(await call('POST', '/api/apps', t.dev, { name: `  ${name} `, redirectUris: [REDIRECT_URI] }), 409, 'APP_NAME_TAKEN');
    expect((await makeApp(t.dev2, { name })).ownerId).toBe(ids.dev2);

    const other = await makeApp(t.dev);
    await expectProblem(await call('PATCH', `/api/apps/${other.clientId}`, t.dev, { name }), 409, 'APP_NAME_TAKEN');
    expect((await json(await read(other.clientId))).name).toBe(other.name);
    expect((await call('PATCH', `/api/apps/${other.clientId}`, t.dev, { name: other.name })).status).toBe(200);
  });

  it('keeps names unique under concurrent creates: one 201, the others 409', async () => {
    // A check-then-insert without a unique index lets concurrent creates through (seen on PostgreSQL).
    const rounds: number[][] = [];
    for (let round = 0; round < 5; round += 1) {
      const name = unique('Race ');
      const results = await Promise.all([1, 2, 3].map(() => call('POST', '/api/apps', t.dev, { name, redirectUris: [REDIRECT_URI] })));
      rounds.push(results.map((r) => r.status).sort());
    }
    expect(rounds).toEqual(Array(5).fill([201, 409, 409]));
  });

  // The latch:admin scope is refused to developers too, and more: see 'the latch:admin scope' below.
  it.each([
    ['trusted', { trusted: true }],
    ['the password grant', { grantTypes: ['authorization_code', 'password'] }],
  ])('refuses a developer %s (403) on create and edit; admins may', async (_what, privileged) => {
    const name = unique('Priv ');
    await expectProblem(await call('POST', '/api/apps', t.dev, { name, redirectUris: [REDIRECT_URI], ...privileged }), 403, 'FORBIDDEN');
    expect((await json(await call('GET', '/api/apps', t.admin))).items.map((a: App) => a.name)).not.toContain(name);

    const app = await makeApp(t.dev);
    await expectProblem(await call('PATCH', `/api/apps/${app.clientId}`, t.dev, privileged), 403, 'FORBIDDEN');
    const unchanged = await json(await read(app.clientId));
    expect(unchanged).toMatchObject({ trusted: false, grantTypes: ['authorization_code', 'refresh_token', 'client_credentials'], scopes: ['openid', 'profile', 'email', 'offline_access'] });

    // An admin may allow the password grant; trust needs an admin owner too ('trusted apps' below).
    const byAdmin = await makeApp('trusted' in privileged ? t.admin : t.dev);
    expect((await call('PATCH', `/api/apps/${byAdmin.clientId}`, t.admin, privileged)).status).toBe(200);
    expect(await json(await read(byAdmin.clientId))).toMatchObject(privileged);
  });

  it('refuses scopes the provider does not have (400): they would break every sign-in of the app', async () => {
    await expectProblem(await call('POST', '/api/apps', t.dev, { name: unique('Scoped '), redirectUris: [REDIRECT_URI], grantTypes: ['authorization_code'], scopes: ['read', 'write'] }), 400, 'VALIDATION_FAILED');
    const app = await makeApp(t.dev, { scopes: ['openid', 'email'] });
    await expectProblem(await call('PATCH', `/api/apps/${app.clientId}`, t.dev, { scopes: ['openid', 'read'] }), 400, 'VALIDATION_FAILED');
  });

  it('is refused to ordinary users, staff and API keys (403)', async () => {
    const key = await makeKey((await makeApp(t.dev)).clientId, t.dev);
    for (const token of [t.user, t.staff, key]) {
      await expectProblem(await call('POST', '/api/apps', token, { name: unique('Nope '), redirectUris: [REDIRECT_URI] }), 403, 'FORBIDDEN');
    }
  });
});

describe('listing and reading apps', () => {
  it('shows developers their own apps only, admins all, and a key its app', async () => {
    const mine = await makeApp(t.dev);
    const theirs = await makeApp(t.dev2);
    const key = await makeKey(mine.clientId, t.dev);
    const list = async (token: string) => (await json(await call('GET', '/api/apps', token))).items as App[];

    const devApps = await list(t.dev);
    expect(devApps.map((a) => a.clientId)).toContain(mine.clientId);
    expect(devApps.every((a) => a.ownerId === ids.dev)).toBe(true);
    expect((await list(t.dev2)).map((a) => a.clientId)).not.toContain(mine.clientId);
    expect((await list(t.admin)).map((a) => a.clientId)).toEqual(expect.arrayContaining([mine.clientId, theirs.clientId, fixtures.confidential.clientId]));
    expect((await list(key)).map((a) => a.clientId)).toEqual([mine.clientId]);

    await expectProblem(await call('GET', `/api/apps/${mine.clientId}`, t.dev2), 404, 'CLIENT_NOT_FOUND');
    await expectProblem(await call('GET', `/api/apps/${fixtures.confidential.clientId}`, t.dev), 404, 'CLIENT_NOT_FOUND');
    expect((await call('GET', `/api/apps/${fixtures.confidential.clientId}`, t.admin)).status).toBe(200);
  });

  it('takes a developer role away with the role: the apps stay, the former developer sees none', async () => {
    const u = await makeUser({ isDeveloper: true });
    const token = await login(u.username);
    const app = await makeApp(token);
    await server.prisma.user.update({ where: { id: u.id }, data: { isDeveloper: false } });
    await expectProblem(await call('GET', `/api/apps/${app.clientId}`, token), 404, 'CLIENT_NOT_FOUND');
    await expectProblem(await call('GET', '/api/apps', token), 403, 'FORBIDDEN');
    expect((await read(app.clientId)).status).toBe(200);
  });
});

describe('API keys', () => {
  it('leaves exactly one key active when several are created at once, also on PostgreSQL', async () => {
    const app = await makeApp(t.dev);
    for (let round = 0; round < 3; round += 1) {
      const created = await Promise.all(Array.from({ length: 8 }, () => call('POST', `/api/apps/${app.clientId}/api-keys`, t.dev)));
      expect(created.map((r) => r.status)).toEqual(Array(8).fill(201));
      const { items } = await json(await call('GET', `/api/apps/${app.clientId}/api-keys`, t.dev));
      expect(items.filter((k: { active: boolean }) => k.active)).toHaveLength(1);
    }
  });

  it("act for their own app: read, edit, users and keys; other apps answer 404; the rest 403", async () => {
    const [a, b] = [await makeApp(t.dev), await makeApp(t.dev)];
    const keyA = await makeKey(a.clientId, t.dev);

    expect((await call('GET', `/api/apps/${a.clientId}`, keyA)).status).toBe(200);
    const uri = 'http://127.0.0.1:9/elsewhere';
    expect((await call('PATCH', `/api/apps/${a.clientId}`, keyA, { redirectUris: [REDIRECT_URI, uri] })).status).toBe(200);
    expect((await json(await read(a.clientId))).redirectUris).toEqual([REDIRECT_URI, uri]);
    expect((await json(await call('GET', `/api/apps/${a.clientId}/users`, keyA))).items).toEqual([]);
    expect((await json(await call('GET', `/api/apps/${a.clientId}/api-keys`, keyA))).items).toHaveLength(1);

    for (const [method, suffix, body] of [['GET', ''], ['PATCH', '', { name: 'Stolen' }], ['DELETE', ''], ['POST', '/secret'], ['POST', '/revoke'], ['GET', '/api-keys'], ['POST', '/api-keys'], ['GET', '/users']] as const) {
      await expectProblem(await call(method, `/api/apps/${b.clientId}${suffix}`, keyA, body), 404, 'CLIENT_NOT_FOUND');
    }
    expect(await json(await read(b.clientId))).toMatchObject({ name: b.name });

    for (const [method, path] of [['POST', '/api/apps'], ['GET', '/api/users'], ['GET', '/api/settings'], ['GET', '/api/audit'], ['GET', '/api/me']] as const) {
      await expectProblem(await call(method, path, keyA, method === 'POST' ? { name: unique('K '), redirectUris: [REDIRECT_URI] } : undefined), 403, 'FORBIDDEN');
    }
    // It may not delete its own app.
    expect((await call('DELETE', `/api/apps/${a.clientId}`, keyA)).status).toBeGreaterThanOrEqual(400);
    expect((await read(a.clientId)).status).toBe(200);
  });

  it("stop while the app's owner is disabled, and for good once the owner is deleted", async () => {
    const owner = await makeUser({ isDeveloper: true });
    const ownerToken = await login(owner.username);
    const app = await makeApp(ownerToken);
    const key = await makeKey(app.clientId, ownerToken);
    expect((await call('GET', `/api/apps/${app.clientId}`, key)).status).toBe(200);

    expect((await call('PATCH', `/api/users/${owner.id}`, t.admin, { active: false })).status).toBe(200);
    await expectProblem(await call('POST', `/api/apps/${app.clientId}/secret`, key), 401, 'UNAUTHENTICATED');
    await expectProblem(await call('POST', `/api/apps/${app.clientId}/api-keys`, key), 401, 'UNAUTHENTICATED');
    expect((await call('PATCH', `/api/users/${owner.id}`, t.admin, { active: true })).status).toBe(200);
    expect((await call('GET', `/api/apps/${app.clientId}`, key)).status).toBe(200);

    expect((await call('DELETE', `/api/users/${owner.id}`, t.admin)).status).toBe(204);
    await expectProblem(await call('GET', `/api/apps/${app.clientId}`, key), 401, 'UNAUTHENTICATED');
    // The app itself stays, for an admin to manage.
    expect((await read(app.clientId)).status).toBe(200);
  });

  it('of an app with latch:admin cannot mint its credentials: only admins rotate its secret or make keys', async () => {
    const app = await makeApp(t.admin, { grantTypes: ['client_credentials'], scopes: ['latch:admin'] });
    const key = await makeKey(app.clientId, t.admin);
    await expectProblem(await call('POST', `/api/apps/${app.clientId}/secret`, key), 403, 'FORBIDDEN');
    await expectProblem(await call('POST', `/api/apps/${app.clientId}/api-keys`, key), 403, 'FORBIDDEN');
    expect((await call('POST', `/api/apps/${app.clientId}/secret`, t.admin)).status).toBe(200);

    // Nor its owner, once no longer an admin (no developer's app can be given the scope).
    const former = await makeUser({ isAdmin: true, isDeveloper: true });
    const formerToken = await login(former.username);
    const owned = await makeApp(formerToken, { grantTypes: ['client_credentials'], scopes: ['latch:admin'] });
    expect((await call('PATCH', `/api/users/${former.id}`, t.admin, { isAdmin: false })).status).toBe(200);
    await expectProblem(await call('POST', `/api/apps/${owned.clientId}/secret`, formerToken), 403, 'FORBIDDEN');
    await expectProblem(await call('POST', `/api/apps/${owned.clientId}/api-keys`, formerToken), 403, 'FORBIDDEN');
  });

  it("stop when the owner loses the developer role, as the owner's own calls do; they work again with it", async () => {
    const owner = await makeUser({ isDeveloper: true });
    const ownerToken = await login(owner.username);
    const app = await makeApp(ownerToken);
    const key = await makeKey(app.clientId, ownerToken);
    expect((await call('PATCH', `/api/apps/${app.clientId}`, key, { name: unique('Keyed ') })).status).toBe(200);

    expect((await call('PATCH', `/api/users/${owner.id}`, t.admin, { isDeveloper: false })).status).toBe(200);
    await expectProblem(await call('GET', `/api/apps/${app.clientId}`, key), 401, 'UNAUTHENTICATED');
    await expectProblem(await call('PATCH', `/api/apps/${app.clientId}`, key, { name: 'Renamed by a key' }), 401, 'UNAUTHENTICATED');
    await expectProblem(await call('POST', `/api/apps/${app.clientId}/secret`, key), 401, 'UNAUTHENTICATED');
    await expectProblem(await call('POST', `/api/apps/${app.clientId}/api-keys`, key), 401, 'UNAUTHENTICATED');
    // Nothing changed: the secret still works and the key is still the app's only one.
    expect(await tokenRequest(app.clientId, app.clientSecret)).toMatchObject({ status: 200, ok: true });
    expect((await json(await call('GET', `/api/apps/${app.clientId}/api-keys`, t.admin))).items).toHaveLength(1);
    expect((await json(await read(app.clientId))).name).not.toBe('Renamed by a key');

    expect((await call('PATCH', `/api/users/${owner.id}`, t.admin, { isDeveloper: true })).status).toBe(200);
    expect((await call('GET', `/api/apps/${app.clientId}`, key)).status).toBe(200);
  });

  it('a new key deactivates the old one at once; keys are listed, never shown again', async () => {
    const app = await makeApp(t.dev);
    const first = await makeKey(app.clientId, t.dev);
    expect((await call('GET', `/api/apps/${app.clientId}`, first)).status).toBe(200);

    const created = await json(await call('POST', `/api/apps/${app.clientId}/api-keys`, t.dev));
    expect(created.key).toMatch(/^latch_/);
    expect(created.key.startsWith(created.prefix)).toBe(true);
    await expectProblem(await call('GET', `/api/apps/${app.clientId}`, first), 401, 'UNAUTHENTICATED');
    expect((await call('GET', `/api/apps/${app.clientId}`, created.key)).status).toBe(200);

    // A key may replace itself; it stops working as soon as it has.
    const third = await json(await call('POST', `/api/apps/${app.clientId}/api-keys`, created.key));
    await expectProblem(await call('GET', `/api/apps/${app.clientId}`, created.key), 401, 'UNAUTHENTICATED');

    const listing = await call('GET', `/api/apps/${app.clientId}/api-keys`, third.key);
    const text = await listing.clone().text();
    for (const key of [first, created.key, third.key]) expect(text).not.toContain(key);
    const { items } = await json(listing);
    expect(items).toHaveLength(3);
    expect(items.filter((k: { active: boolean }) => k.active)).toEqual([expect.objectContaining({ id: third.id, prefix: third.prefix })]);
    expect(Object.keys(items[0]).sort()).toEqual(['active', 'createdAt', 'id', 'lastUsedAt', 'prefix']);
  });
});

// latch:admin makes an app's client-credentials tokens act as an admin, and an app's owner holds its
// secret from the start: only apps no user owns, or whose owner is an active admin, may use it.
describe('the latch:admin scope', () => {
  const NOT_FOR_DEVELOPERS = /owned by an admin/;

  it('is refused to a developer on create and edit (403), and an admin may not give it to their app either', async () => {
    const name = unique('Greedy ');
    await expectProblem(await call('POST', '/api/apps', t.dev, { name, grantTypes: ['client_credentials'], scopes: ['latch:admin'] }), 403, 'FORBIDDEN');
    expect((await json(await call('GET', '/api/apps', t.admin))).items.map((a: App) => a.name)).not.toContain(name);

    // The whole escalation: the developer holds the secret from creation; an admin then adds the scope.
    const app = await makeApp(t.dev, { grantTypes: ['client_credentials'] });
    await expectProblem(await call('PATCH', `/api/apps/${app.clientId}`, t.dev, { scopes: ['latch:admin'] }), 403, 'FORBIDDEN');
    for (const scopes of [['latch:admin'], ['openid', 'latch:admin']]) {
      const refused = await call('PATCH', `/api/apps/${app.clientId}`, t.admin, { name: unique('Renamed '), scopes });
      await expectProblem(refused.clone(), 403, 'FORBIDDEN');
      expect((await json(refused)).detail).toMatch(NOT_FOR_DEVELOPERS);
    }
    expect(await json(await read(app.clientId))).toMatchObject({ name: app.name, scopes: ['openid', 'profile', 'email', 'offline_access'] });

    // So the developer's secret never gets a latch:admin token, and their ordinary token manages nothing.
    expect(await tokenRequest(app.clientId, app.clientSecret, 'latch:admin')).toMatchObject({ status: 400, error: 'invalid_scope', ok: false });
    const plain = await tokenRequest(app.clientId, app.clientSecret);
    expect(plain).toMatchObject({ status: 200, ok: true });
    await expectProblem(await call('GET', '/api/users', plain.token), 403, 'FORBIDDEN');
    await expectProblem(await call('PATCH', `/api/users/${ids.dev}`, plain.token, { isAdmin: true }), 403, 'FORBIDDEN');
    expect(await server.users.findById(ids.dev)).toMatchObject({ isAdmin: false });

    // Other settings of the app an admin may still change; and an admin's own app may have the scope.
    expect((await call('PATCH', `/api/apps/${app.clientId}`, t.admin, { grantTypes: ['client_credentials', 'authorization_code'] })).status).toBe(200);
    const own = await makeApp(t.admin, { grantTypes: ['client_credentials'] });
    expect((await call('PATCH', `/api/apps/${own.clientId}`, t.admin, { scopes: ['latch:admin'] })).status).toBe(200);
    const service = await tokenRequest(own.clientId, own.clientSecret, 'latch:admin');
    expect(service).toMatchObject({ status: 200, scope: 'latch:admin' });
    expect((await call('GET', '/api/users', service.token)).status).toBe(200);
  });

  it('is refused in the admin console too, with the reason on the scopes field', async () => {
    const app = await makeApp(t.dev, { grantTypes: ['client_credentials'] });
    const agent = createUserAgent();
    const loginPage = await agent.navigate(`${server.url}/admin/apps/${app.clientId}`);
    const page = await agent.submit(loginPage, '/login', { login: ids.adminLogin, password: PASSWORD });
    expect(page.url).toBe(`${server.url}/admin/apps/${app.clientId}`);

    const refused = await agent.submit(page, `/admin/apps/${app.clientId}`, { name: app.name, grantTypes: 'client_credentials', scopes: 'openid latch:admin' });
    expect(refused.status).toBe(403);
    expect(refused.html).toMatch(NOT_FOR_DEVELOPERS);
    expect(refused.html).toMatch(/id="scopes"[^>]*aria-invalid="true"/);
    expect((await json(await read(app.clientId))).scopes).not.toContain('latch:admin');
  });

  it("stops acting as an admin once its owner is no longer one: tokens issued before and after alike", async () => {
    const owner = await makeUser({ isAdmin: true, isStaff: true });
    const ownerToken = await login(owner.username);
    const app = await makeApp(ownerToken, { grantTypes: ['client_credentials'], scopes: ['latch:admin'] });
    const before = await tokenRequest(app.clientId, app.clientSecret, 'latch:admin');
    expect((await call('GET', '/api/users', before.token)).status).toBe(200);

    // Demoted to developer: they keep the app and its secret, but its tokens no longer manage Latch.
    expect((await call('PATCH', `/api/users/${owner.id}`, t.admin, { isAdmin: false, isDeveloper: true })).status).toBe(200);
    await expectProblem(await call('GET', '/api/users', before.token), 403, 'FORBIDDEN');
    const after = await tokenRequest(app.clientId, app.clientSecret, 'latch:admin');
    for (const token of [before.token, after.token]) {
      await expectProblem(await call('PATCH', `/api/users/${owner.id}`, token, { isAdmin: true }), 403, 'FORBIDDEN');
    }
    expect(await server.users.findById(owner.id)).toMatchObject({ isAdmin: false });
    // An admin may still edit the app (the console sends every field, the scope included), and its
    // tokens stay powerless.
    expect((await call('PATCH', `/api/apps/${app.clientId}`, t.admin, { name: unique('Kept '), scopes: ['latch:admin'] })).status).toBe(200);
    await expectProblem(await call('GET', '/api/users', after.token), 403, 'FORBIDDEN');

    // Admin again: the same app's tokens work again (the rule is the owner's role now).
    expect((await call('PATCH', `/api/users/${owner.id}`, t.admin, { isAdmin: true })).status).toBe(200);
    expect((await call('GET', '/api/users', before.token)).status).toBe(200);

    // A deleted owner is no admin either.
    expect((await call('DELETE', `/api/users/${owner.id}`, t.admin)).status).toBe(204);
    await expectProblem(await call('GET', '/api/users', (await tokenRequest(app.clientId, app.clientSecret, 'latch:admin')).token), 403, 'FORBIDDEN');
  });

  it("gives no admin rights to a developer's app that got the scope before this rule", async () => {
    const app = await makeApp(t.dev, { grantTypes: ['client_credentials'] });
    await server.clients.update(app.clientId, { scopes: ['latch:admin'] });
    const granted = await tokenRequest(app.clientId, app.clientSecret, 'latch:admin');
    await expectProblem(await call('GET', '/api/users', granted.token), 403, 'FORBIDDEN');
    await expectProblem(await call('PATCH', `/api/users/${ids.dev}`, granted.token, { isAdmin: true }), 403, 'FORBIDDEN');
    expect(await server.users.findById(ids.dev)).toMatchObject({ isAdmin: false });
  });
});

// A trusted app skips consent and its users' tokens act as them at /api: whoever holds its secret
// acts as every user who signs in to it, admins included, so it holds the rule latch:admin does.
describe('trusted apps', () => {
  /** Signs `username` in to the app through the code flow; whether they were asked, and the tokens. */
  async function signInAs(app: App, username: string) {
    const flow = await signIn(await relyingParty(server, app), { login: username });
    return { sawConsent: flow.sawConsent, tokens: await flow.tokens() };
  }

  it("may not be a developer's: an admin may not mark one trusted (403, naming the field), only an app of an admin", async () => {
    const app = await makeApp(t.dev);
    const refused = await call('PATCH', `/api/apps/${app.clientId}`, t.admin, { trusted: true });
    await expectProblem(refused.clone(), 403, 'FORBIDDEN');
    expect(await json(refused)).toMatchObject({ detail: expect.stringMatching(/owned by an admin \(or by no one\) may be trusted/), errors: [{ path: 'trusted' }] });
    expect(await json(await read(app.clientId))).toMatchObject({ trusted: false });

    const own = await makeApp(t.admin, { trusted: true });
    const admin = await makeUser({ isAdmin: true });
    const signedIn = await signInAs(own, admin.username);
    expect(signedIn.sawConsent).toBe(false);
    expect((await call('GET', '/api/users', signedIn.tokens.access_token)).status).toBe(200);
  });

  it('cannot be pointed elsewhere or given new credentials by its API key: only admins change it', async () => {
    const app = await makeApp(t.admin, { trusted: true });
    const key = await makeKey(app.clientId, t.admin);
    await expectProblem(await call('PATCH', `/api/apps/${app.clientId}`, key, { redirectUris: ['https://attacker.example/cb'] }), 403, 'FORBIDDEN');
    await expectProblem(await call('POST', `/api/apps/${app.clientId}/secret`, key), 403, 'FORBIDDEN');
    await expectProblem(await call('POST', `/api/apps/${app.clientId}/api-keys`, key), 403, 'FORBIDDEN');
    expect(await json(await read(app.clientId))).toMatchObject({ redirectUris: [REDIRECT_URI] });
    // The key still reads its app; an admin still changes it.
    expect((await call('GET', `/api/apps/${app.clientId}`, key)).status).toBe(200);
    expect((await call('PATCH', `/api/apps/${app.clientId}`, t.admin, { redirectUris: [REDIRECT_URI, 'https://app.example/cb'] })).status).toBe(200);
  });

  it("counts only while no developer owns it: a developer's app trusted before this rule asks for consent, and its tokens get 403 at /api", async () => {
    const app = await makeApp(t.dev);
    await server.clients.update(app.clientId, { trusted: true });
    const admin = await makeUser({ isAdmin: true });
    const signedIn = await signInAs(app, admin.username);
    expect(signedIn.sawConsent).toBe(true);
    await expectProblem(await call('GET', '/api/users', signedIn.tokens.access_token), 403, 'FORBIDDEN');
    await expectProblem(await call('GET', '/api/me', signedIn.tokens.access_token), 403, 'FORBIDDEN');
  });

  it('stops counting when its owner is no longer an admin, within the client cache (5 s), for tokens issued before too', async () => {
    const owner = await makeUser({ isAdmin: true, isDeveloper: true });
    const app = await makeApp(await login(owner.username), { trusted: true });
    const user = await makeUser();
    const before = await signInAs(app, user.username);
    expect(before.sawConsent).toBe(false);
    expect((await call('GET', '/api/me', before.tokens.access_token)).status).toBe(200);

    expect((await call('PATCH', `/api/users/${owner.id}`, t.admin, { isAdmin: false })).status).toBe(200);
    await expect.poll(async () => (await call('GET', '/api/me', before.tokens.access_token)).status, { timeout: 8000, interval: 250 }).toBe(403);
    expect((await signInAs(app, (await makeUser()).username)).sawConsent).toBe(true);

    // An admin may still edit it as it is (the console sends `trusted` with every save), but once
    // trust is taken away it cannot be given again while the owner is no admin.
    expect((await call('PATCH', `/api/apps/${app.clientId}`, t.admin, { name: unique('Kept '), trusted: true })).status).toBe(200);
    expect((await call('PATCH', `/api/apps/${app.clientId}`, t.admin, { trusted: false })).status).toBe(200);
    await expectProblem(await call('PATCH', `/api/apps/${app.clientId}`, t.admin, { trusted: true }), 403, 'FORBIDDEN');
  });
});

describe('secrets, users and revocation', () => {
  it('rotating the secret stops the old one at /o/token at once and the new one works', async () => {
    const app = await makeApp(t.dev);
    expect(await tokenRequest(app.clientId, app.clientSecret)).toMatchObject({ status: 200, ok: true });

    const res = await call('POST', `/api/apps/${app.clientId}/secret`, t.dev);
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toContain('no-store');
    const { clientSecret } = await json(res);
    expect(clientSecret).not.toBe(app.clientSecret);

    expect(await tokenRequest(app.clientId, app.clientSecret)).toMatchObject({ status: 401, error: 'invalid_client' });
    expect(await tokenRequest(app.clientId, clientSecret)).toMatchObject({ status: 200, ok: true });
  });

  it('an edit applies at the token endpoint at once', async () => {
    const app = await makeApp(t.dev, { grantTypes: ['authorization_code'] });
    expect(await tokenRequest(app.clientId, app.clientSecret)).toMatchObject({ status: 400, ok: false });
    expect((await call('PATCH', `/api/apps/${app.clientId}`, t.dev, { grantTypes: ['authorization_code', 'client_credentials'] })).status).toBe(200);
    expect(await tokenRequest(app.clientId, app.clientSecret)).toMatchObject({ status: 200, ok: true });
  });

  it("lists the users who signed in to the app through the code flow, with their last sign-in", async () => {
    const app = await makeApp(t.dev);
    expect((await json(await call('GET', `/api/apps/${app.clientId}/users`, t.dev))).items).toEqual([]);
    const { user } = await signInTo(app);
    const { items } = await json(await call('GET', `/api/apps/${app.clientId}/users`, t.dev));
    expect(items).toEqual([{ id: user.id, email: user.email, name: null, username: user.username, lastLoginAt: expect.any(String) }]);
    expect(Date.now() - Date.parse(items[0].lastLoginAt)).toBeLessThan(60_000);
    // Another app's users are not listed.
    expect((await json(await call('GET', `/api/apps/${(await makeApp(t.dev)).clientId}/users`, t.dev))).items).toEqual([]);
  });

  it("shows its owner and keys only what each user agreed to share with the app; admins see all", async () => {
    const app = await makeApp(t.dev);
    const [quiet, mailOnly] = [await makeUser({}, { name: 'Quiet Person' }), await makeUser({}, { name: 'Mail Person' })];
    const rp = await relyingParty(server, app);
    await signIn(rp, { login: quiet.username, params: { scope: 'openid' } });
    await signIn(rp, { login: mailOnly.username, params: { scope: 'openid email' } });
    const key = await makeKey(app.clientId, t.dev);

    for (const token of [t.dev, key]) {
      const { items } = await json(await call('GET', `/api/apps/${app.clientId}/users`, token));
      expect(items).toEqual([
        { id: quiet.id, email: null, name: null, username: null, lastLoginAt: expect.any(String) },
        { id: mailOnly.id, email: mailOnly.email, name: null, username: null, lastLoginAt: expect.any(String) },
      ]);
    }
    const { items } = await json(await call('GET', `/api/apps/${app.clientId}/users`, t.admin));
    expect(items).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ id: quiet.id, email: quiet.email, name: 'Quiet Person', username: quiet.username }),
        expect.objectContaining({ id: mailOnly.id, email: mailOnly.email, name: 'Mail Person' }),
      ]),
    );
  });

  it('POST /revoke ends every grant and token of the app; the app stays', async () => {
    const app = await makeApp(t.dev);
    const { tokens } = await signInTo(app);
    expect(await introspect(tokens.access_token)).toBe(true);
    const res = await json(await call('POST', `/api/apps/${app.clientId}/revoke`, t.dev));
    expect(res.revoked).toBeGreaterThanOrEqual(2);
    expect(await introspect(tokens.access_token)).toBe(false);
    expect(await introspect(tokens.refresh_token!)).toBe(false);
    expect((await json(await call('GET', `/api/apps/${app.clientId}/users`, t.dev))).items).toEqual([]);
    expect((await read(app.clientId)).status).toBe(200);
  });

  it("DELETE revokes the tokens its users had, its keys and its secret, then answers 404", async () => {
    const app = await makeApp(t.dev);
    const key = await makeKey(app.clientId, t.dev);
    const { tokens } = await signInTo(app);
    expect(await introspect(tokens.access_token)).toBe(true);

    // A body this route does not take is not read, malformed or not.
    expect((await call('DELETE', `/api/apps/${app.clientId}`, t.dev, '{"cut off')).status).toBe(204);
    expect(await introspect(tokens.access_token)).toBe(false);
    expect(await introspect(tokens.refresh_token!)).toBe(false);
    await expectProblem(await read(app.clientId), 404, 'CLIENT_NOT_FOUND');
    await expectProblem(await call('GET', `/api/apps/${app.clientId}`, key), 401, 'UNAUTHENTICATED');
    expect(await tokenRequest(app.clientId, app.clientSecret)).toMatchObject({ status: 401, error: 'invalid_client' });
    expect((await json(await call('GET', '/api/apps', t.dev))).items.map((a: App) => a.clientId)).not.toContain(app.clientId);
    await expectProblem(await call('DELETE', `/api/apps/${app.clientId}`, t.dev), 404, 'CLIENT_NOT_FOUND');
  });
});

// Redirect URIs are matched exactly; one that only looks like a pattern, or leads outside the web
// and native apps, is refused when registered rather than left never to match.
describe('redirect URI rules', () => {
  const refused = [
    'https://*.evil.example/cb',
    'https://evil.example/*',
    'https://evil.example/cb?next=*',
    'view-source:https://evil.example/cb',
    'jar:https://evil.example/app.jar!/cb',
    'javascript:alert(1)//',
    'data:text/html,hi',
    'vbscript:msgbox',
    'myapp:/cb',
    'https://app.example/cb#frag',
  ];

  it.each(refused)('refuses %s (400) as a redirect or post-logout URI, on create and edit', async (uri) => {
    for (const field of ['redirectUris', 'postLogoutRedirectUris']) {
      const res = await call('POST', '/api/apps', t.dev, { name: unique('Odd '), redirectUris: [REDIRECT_URI], [field]: [REDIRECT_URI, uri] });
      await expectProblem(res.clone(), 400, 'VALIDATION_FAILED');
      expect(JSON.stringify(await json(res))).toContain(`${field}.1`);
    }
    const app = await makeApp(t.dev);
    await expectProblem(await call('PATCH', `/api/apps/${app.clientId}`, t.dev, { redirectUris: [uri] }), 400, 'VALIDATION_FAILED');
    expect((await json(await read(app.clientId))).redirectUris).toEqual([REDIRECT_URI]);
  });

  it('accepts https, http and a reverse-DNS private-use scheme; a native app signs in with the latter', async () => {
    const uris = ['https://app.example/cb?x=1', 'http://127.0.0.1:8080/cb', 'http://localhost/cb', 'com.example.app:/oauth2redirect', 'Com.Example.App2:/cb'];
    const app = await makeApp(t.dev, { public: true, grantTypes: ['authorization_code'], redirectUris: uris, postLogoutRedirectUris: ['com.example.app:/signed-out'] });
    expect((await json(await read(app.clientId))).redirectUris).toEqual(uris);

    const challenge = await oidc.calculatePKCECodeChallenge(oidc.randomPKCECodeVerifier());
    const url = oidc.buildAuthorizationUrl(await relyingParty(server, app), { redirect_uri: 'com.example.app:/oauth2redirect', scope: 'openid', code_challenge: challenge, code_challenge_method: 'S256' });
    const res = await fetch(url, { redirect: 'manual' });
    expect(res.status, await res.clone().text()).toBe(303);
    expect(res.headers.get('location')).toMatch(/^\/interaction\//);
  });

  it('lets an app marked native use its loopback redirect URI on any port (RFC 8252); a web app only on the registered one', async () => {
    const loopback = 'http://127.0.0.1/callback';
    const signInFrom = async (app: { clientId: string }, port: number) => {
      const challenge = await oidc.calculatePKCECodeChallenge(oidc.randomPKCECodeVerifier());
      const url = oidc.buildAuthorizationUrl(await relyingParty(server, app), { redirect_uri: `http://127.0.0.1:${port}/callback`, scope: 'openid', code_challenge: challenge, code_challenge_method: 'S256' });
      return fetch(url, { redirect: 'manual' });
    };
    const native = await makeApp(t.dev, { public: true, native: true, grantTypes: ['authorization_code'], redirectUris: [loopback] });
    expect(await json(await read(native.clientId))).toMatchObject({ native: true, public: true });
    const started = await signInFrom(native, 54321);
    expect(started.status, await started.clone().text()).toBe(303);
    expect(started.headers.get('location')).toMatch(/^\/interaction\//);

    // Another app on the device could answer at a loopback URI: the user allows the app every time.
    const agent = createUserAgent();
    for (let i = 0; i < 2; i += 1) expect((await signIn(await relyingParty(server, native), { agent })).sawConsent).toBe(true);

    const web = await makeApp(t.dev, { public: true, grantTypes: ['authorization_code'], redirectUris: [loopback] });
    expect((await json(await read(web.clientId))).native).toBe(false);
    expect((await signInFrom(web, 54321)).status).toBe(400);

    // A native app's plain http stays on the device (https it may claim, RFC 8252 section 7.2).
    const res = await call('POST', '/api/apps', t.dev, { name: unique('Native '), public: true, native: true, grantTypes: ['authorization_code'], redirectUris: ['http://app.example/cb'] });
    await expectProblem(res, 400, 'VALIDATION_FAILED');
  });

  it("keeps a native app's http on loopback addresses (400 otherwise); a web app's http may go anywhere, as before", async () => {
    const native = 'com.example.app:/cb';
    for (const [field, uri] of [['redirectUris', 'http://app.example/cb'], ['redirectUris', 'https://127.0.0.1/cb'], ['postLogoutRedirectUris', 'http://app.example/out']] as const) {
      const body = { name: unique('Native '), public: true, grantTypes: ['authorization_code'], redirectUris: [native], [field]: field === 'redirectUris' ? [native, uri] : [uri] };
      const res = await call('POST', '/api/apps', t.dev, body);
      await expectProblem(res.clone(), 400, 'VALIDATION_FAILED');
      expect((await json(res)).detail).toContain(uri);
    }
    const web = await makeApp(t.dev, { redirectUris: ['http://app.example/cb'] });
    await expectProblem(await call('PATCH', `/api/apps/${web.clientId}`, t.dev, { redirectUris: ['http://app.example/cb', native] }), 400, 'VALIDATION_FAILED');
    expect((await json(await read(web.clientId))).redirectUris).toEqual(['http://app.example/cb']);
  });
});
