import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { startTestServer, type TestServer } from '../support/server.js';
import { createApiClient } from '../support/api-client.js';
import { authorizationRequest, relyingParty } from '../support/oidc.js';
import { createUserAgent } from '../support/user-agent.js';

// /api/connections (admins: global upstream providers) and /api/apps/:id/connections (an app's
// owner: its own providers, and which of its own and the global ones its login page offers).

let server: TestServer;
const api = createApiClient(() => server, { expectBearerChallenge: true });
const { unique, call, json, expectProblem, makeUser, makeApp, makeKey } = api;
const t = {} as { admin: string; staff: string; dev: string; dev2: string; user: string };
const github = (extra: Record<string, unknown> = {}) => ({ kind: 'github', slug: unique('gh-'), name: 'GitHub', clientId: 'Iv1.abc', clientSecret: 'upstream-secret-value', ...extra });

beforeAll(async () => {
  server = await startTestServer({ CONNECTION_SECRET_KEYS: randomBytes(32).toString('base64') });
  const [admin, staff, dev, dev2, user] = await Promise.all([makeUser({ isAdmin: true }), makeUser({ isStaff: true }), makeUser({ isDeveloper: true }), makeUser({ isDeveloper: true }), makeUser()]);
  for (const [k, u] of Object.entries({ admin, staff, dev, dev2, user })) t[k as keyof typeof t] = (await api.login(u.username)).access_token;
});
afterAll(() => server?.stop());

describe('global connections (/api/connections)', () => {
  it('lets admins create one: the answer shows the callback URL and never the secret, which is stored encrypted', async () => {
    const res = await call('POST', '/api/connections', t.admin, github({ slug: 'github-main' }));
    expect(res.status, await res.clone().text()).toBe(201);
    const body = await json(res);
    expect(body).toMatchObject({
      kind: 'github',
      slug: 'github-main',
      callbackUrl: `${server.url}/callback/github-main`,
      hasClientSecret: true,
      appId: null,
      enabled: true,
      authorizationUrl: 'https://github.com/login/oauth/authorize',
      scopes: ['read:user', 'user:email'],
    });
    expect(JSON.stringify(body)).not.toContain('upstream-secret-value');
    const row = await server.prisma.connection.findUniqueOrThrow({ where: { id: body.id } });
    expect(row.clientSecret).not.toContain('upstream-secret-value');
    expect(row.clientSecret!.split('.')).toHaveLength(5); // a compact JWE
    expect(await server.connections.clientSecretOf(row)).toBe('upstream-secret-value');

    const list = await json(await call('GET', '/api/connections', t.admin));
    expect(list.items.map((c: { slug: string }) => c.slug)).toContain('github-main');
    expect((await json(await call('GET', `/api/connections/${body.id}`, t.admin))).callbackUrl).toBe(`${server.url}/callback/github-main`);
  });

  it('validates each kind, and refuses duplicates and non-loopback http', async () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ kind: 'oidc', slug: unique('o-'), name: 'SSO', clientId: 'x' }, 'issuer'],
      [{ kind: 'oauth2', slug: unique('o-'), name: 'Plain', clientId: 'x', authorizationUrl: 'https://a.example/authorize' }, 'tokenUrl'],
      [{ kind: 'google', slug: unique('g-'), name: 'Google', clientId: 'x' }, 'clientSecret'],
      [github({ slug: 'Not A Slug' }), 'slug'],
      [github({ tokenUrl: 'http://github.example/login/oauth/access_token' }), 'tokenUrl'],
      [github({ kind: 'saml' }), 'kind'],
      [github({ tokenUrl: 'not a url' }), 'tokenUrl'],
      [github({ unknownField: 1 }), ''],
    ];
    for (const [body, field] of cases) {
      const res = await call('POST', '/api/connections', t.admin, body);
      await expectProblem(res.clone(), 400, 'VALIDATION_FAILED');
      if (field) expect(JSON.stringify((await json(res)).errors)).toContain(field);
    }
    await call('POST', '/api/connections', t.admin, github({ slug: 'taken-slug' }));
    await expectProblem(await call('POST', '/api/connections', t.admin, github({ slug: 'taken-slug' })), 409, 'CONNECTION_SLUG_TAKEN');
    // http is fine for a provider on this machine (development, tests).
    expect((await call('POST', '/api/connections', t.admin, github({ tokenUrl: 'http://127.0.0.1:9/token' }))).status).toBe(201);
  });

  it('edits keep the kind and slug, keep the secret unless given, and keep kind rules', async () => {
    const created = await json(await call('POST', '/api/connections', t.admin, { kind: 'oidc', slug: unique('sso-'), name: 'SSO', clientId: 'abc', issuer: 'https://sso.example.com' }));
    expect(created.hasClientSecret).toBe(false);
    const patched = await json(await call('PATCH', `/api/connections/${created.id}`, t.admin, { name: 'Company SSO', clientSecret: 'new-secret-123', enabled: false }));
    expect(patched).toMatchObject({ name: 'Company SSO', hasClientSecret: true, enabled: false, slug: created.slug });
    await expectProblem(await call('PATCH', `/api/connections/${created.id}`, t.admin, { issuer: null }), 400, 'VALIDATION_FAILED');
    await expectProblem(await call('PATCH', `/api/connections/${created.id}`, t.admin, { slug: 'other' }), 400, 'VALIDATION_FAILED');
    expect((await json(await call('PATCH', `/api/connections/${created.id}`, t.admin, { name: 'SSO 2' }))).hasClientSecret).toBe(true);
    const events = await server.audit.search({ event: 'admin.connection_updated' });
    expect(events.items[0]!.detail).toMatchObject({ connectionId: created.id });
  });

  it('is for admins only: staff, developers and users get 403, anonymous 401, unknown ids 404', async () => {
    for (const token of [t.staff, t.dev, t.user]) {
      await expectProblem(await call('GET', '/api/connections', token), 403, 'FORBIDDEN');
      await expectProblem(await call('POST', '/api/connections', token, github()), 403, 'FORBIDDEN');
    }
    await expectProblem(await call('GET', '/api/connections'), 401, 'UNAUTHENTICATED');
    await expectProblem(await call('GET', '/api/connections/nope', t.admin), 404, 'CONNECTION_NOT_FOUND');
    await expectProblem(await call('DELETE', '/api/connections/nope', t.admin), 404, 'CONNECTION_NOT_FOUND');
  });
});

describe("an app's connections (/api/apps/:id/connections)", () => {
  it("lets the owner add the app's own, offer a global one, and withdraw either; the login page follows", async () => {
    const app = await makeApp(t.dev);
    const global = await json(await call('POST', '/api/connections', t.admin, github({ name: 'Global GitHub' })));
    const ownRes = await call('POST', `/api/apps/${app.clientId}/connections`, t.dev, github({ name: 'Own GitHub' }));
    expect(ownRes.status, await ownRes.clone().text()).toBe(201);
    const own = await json(ownRes);
    expect(own).toMatchObject({ appId: app.clientId, offered: true, callbackUrl: `${server.url}/callback/${own.slug}` });

    let listed = (await json(await call('GET', `/api/apps/${app.clientId}/connections`, t.dev))).items as { id: string; offered: boolean }[];
    expect(listed.find((c) => c.id === own.id)?.offered).toBe(true);
    expect(listed.find((c) => c.id === global.id)?.offered).toBe(false);

    expect((await call('PUT', `/api/apps/${app.clientId}/connections/${global.id}`, t.dev)).status).toBe(200);
    const loginPage = async () => {
      const rp = await relyingParty(server, app);
      return (await createUserAgent().navigate((await authorizationRequest(rp)).url)).html;
    };
    let html = await loginPage();
    expect(html).toContain('Continue with Own GitHub');
    expect(html).toContain('Continue with Global GitHub');

    // Withdrawing a global one only stops offering it; withdrawing the app's own deletes it.
    expect((await call('DELETE', `/api/apps/${app.clientId}/connections/${global.id}`, t.dev)).status).toBe(204);
    expect((await call('DELETE', `/api/apps/${app.clientId}/connections/${own.id}`, t.dev)).status).toBe(204);
    expect(await server.prisma.connection.findUnique({ where: { id: global.id } })).not.toBeNull();
    expect(await server.prisma.connection.findUnique({ where: { id: own.id } })).toBeNull();
    html = await loginPage();
    expect(html).not.toContain('Continue with');
    listed = (await json(await call('GET', `/api/apps/${app.clientId}/connections`, t.dev))).items;
    expect(listed.find((c) => c.id === own.id)).toBeUndefined();
  });

  it("keeps one app's connections away from another app and its owner", async () => {
    const mine = await makeApp(t.dev);
    const theirs = await makeApp(t.dev2);
    const own = await json(await call('POST', `/api/apps/${mine.clientId}/connections`, t.dev, github()));
    // Another developer cannot see or change the app, nor offer its connection on their own app.
    await expectProblem(await call('GET', `/api/apps/${mine.clientId}/connections`, t.dev2), 404, 'CLIENT_NOT_FOUND');
    await expectProblem(await call('POST', `/api/apps/${mine.clientId}/connections`, t.dev2, github()), 404, 'CLIENT_NOT_FOUND');
    await expectProblem(await call('PUT', `/api/apps/${theirs.clientId}/connections/${own.id}`, t.dev2), 404, 'CONNECTION_NOT_FOUND');
    await expectProblem(await call('PATCH', `/api/apps/${theirs.clientId}/connections/${own.id}`, t.dev2, { name: 'Mine now' }), 404, 'CONNECTION_NOT_FOUND');
    const listed = (await json(await call('GET', `/api/apps/${theirs.clientId}/connections`, t.dev2))).items as { id: string }[];
    expect(listed.map((c) => c.id)).not.toContain(own.id);
    // Ordinary users cannot manage connections at all.
    await expectProblem(await call('GET', `/api/apps/${mine.clientId}/connections`, t.user), 404, 'CLIENT_NOT_FOUND');
  });

  it("works with the app's API key, edits the app's own connection, and goes away with the app", async () => {
    const app = await makeApp(t.dev);
    const key = await makeKey(app.clientId, t.dev);
    const own = await json(await call('POST', `/api/apps/${app.clientId}/connections`, key, github()));
    expect((await json(await call('PATCH', `/api/apps/${app.clientId}/connections/${own.id}`, key, { name: 'Renamed' }))).name).toBe('Renamed');
    expect((await call('DELETE', `/api/apps/${app.clientId}`, t.dev)).status).toBe(204);
    expect(await server.prisma.connection.findUnique({ where: { id: own.id } })).toBeNull();
    expect(await server.prisma.clientConnection.count({ where: { clientId: app.clientId } })).toBe(0);
  });

  it('ends the accounts linked through a connection when its endpoints move elsewhere, not when it is renamed', async () => {
    const app = await makeApp(t.dev);
    const key = await makeKey(app.clientId, t.dev);
    const own = await json(await call('POST', `/api/apps/${app.clientId}/connections`, key, github({ userinfoUrl: 'https://github.example.com/api/v3/user', tokenUrl: 'https://github.example.com/login/oauth/access_token', authorizationUrl: 'https://github.example.com/login/oauth/authorize' })));
    const victim = await makeUser({ isAdmin: true });
    const linked = () => server.prisma.federatedIdentity.count({ where: { connectionId: own.id } });
    await server.prisma.federatedIdentity.create({ data: { connectionId: own.id, subject: '583231', userId: victim.id } });
    expect((await call('PATCH', `/api/apps/${app.clientId}/connections/${own.id}`, key, { name: 'Renamed', enabled: true })).status).toBe(200);
    expect(await linked()).toBe(1);
    // The same endpoint again changes nothing.
    expect((await call('PATCH', `/api/apps/${app.clientId}/connections/${own.id}`, key, { userinfoUrl: 'https://github.example.com/api/v3/user' })).status).toBe(200);
    expect(await linked()).toBe(1);
    // Pointed at a server that answers with the same (public) GitHub id, it would sign in as the victim.
    expect((await call('PATCH', `/api/apps/${app.clientId}/connections/${own.id}`, key, { userinfoUrl: 'https://attacker.example.com/user' })).status).toBe(200);
    expect(await linked()).toBe(0);
    // So would reading the subject from a claim its users choose (a GitHub login equal to an id).
    await server.prisma.federatedIdentity.create({ data: { connectionId: own.id, subject: '583231', userId: victim.id } });
    expect((await call('PATCH', `/api/apps/${app.clientId}/connections/${own.id}`, key, { claimMapping: { subject: 'login' } })).status).toBe(200);
    expect(await linked()).toBe(0);
  });

  it('offers a connection once when the same offer arrives several times at once, also on PostgreSQL', async () => {
    const app = await makeApp(t.dev);
    const global = await json(await call('POST', '/api/connections', t.admin, github()));
    for (let round = 0; round < 4; round += 1) {
      const offers = await Promise.all(Array.from({ length: 8 }, () => call('PUT', `/api/apps/${app.clientId}/connections/${global.id}`, t.admin)));
      expect(offers.map((r) => r.status)).toEqual(Array(8).fill(200));
      const listed = (await json(await call('GET', `/api/apps/${app.clientId}/connections`, t.dev))).items as { id: string; offered: boolean }[];
      expect(listed.filter((c) => c.id === global.id)).toEqual([expect.objectContaining({ offered: true })]);
      expect((await call('DELETE', `/api/apps/${app.clientId}/connections/${global.id}`, t.dev)).status).toBe(204);
    }
  });

  it("lets only admins choose what Latch's own account sign-in offers", async () => {
    const global = await json(await call('POST', '/api/connections', t.admin, github()));
    await expectProblem(await call('PUT', `/api/apps/latch-account/connections/${global.id}`, t.dev), 404, 'CLIENT_NOT_FOUND');
    expect((await call('PUT', `/api/apps/latch-account/connections/${global.id}`, t.admin)).status).toBe(200);
    expect((await call('DELETE', `/api/apps/latch-account/connections/${global.id}`, t.admin)).status).toBe(204);
    // A connection of its own would make "this app only" sessions that Latch's own pages honour.
    await expectProblem(await call('POST', '/api/apps/latch-account/connections', t.admin, github()), 403, 'FORBIDDEN');
  });
});

describe('without CONNECTION_SECRET_KEYS', () => {
  it('refuses to store a client secret with a clear 409, and still accepts a connection without one', async () => {
    const bare = await startTestServer();
    try {
      const admin = await bare.users.create({ email: 'root@example.com', username: 'root', password: 'correct horse battery staple', isAdmin: true, emailVerified: true });
      const token = (await (await fetch(`${bare.url}/api/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: admin.email, password: 'correct horse battery staple' }) })).json()) as { access_token: string };
      const post = (body: unknown) => fetch(`${bare.url}/api/connections`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token.access_token}` }, body: JSON.stringify(body) });
      const refused = await post(github());
      expect(refused.status).toBe(409);
      expect(((await refused.json()) as { code: string }).code).toBe('CONNECTION_KEY_MISSING');
      expect(await bare.prisma.connection.count()).toBe(0);
      expect((await post({ kind: 'oidc', slug: 'public-sso', name: 'SSO', clientId: 'public-client', issuer: 'https://sso.example.com' })).status).toBe(201);
    } finally {
      await bare.stop();
    }
  });
});
