import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as oidc from 'openid-client';
import { startTestServer, type TestServer } from '../support/server.js';
import { PASSWORD, REDIRECT_URI, authorizationRequest, relyingParty, seed, signIn } from '../support/oidc.js';
import { createApiClient } from '../support/api-client.js';
import { createUserAgent } from '../support/user-agent.js';

// Runtime settings, the audit log, sessions and grants: admins and admin services only (who may
// call them at all is proven in management-api.test.ts); here, that what they do is real.

let server: TestServer;
let fixtures: Awaited<ReturnType<typeof seed>>;
const t = {} as { admin: string; staff: string; dev: string };
const ids = {} as { admin: string; staff: string };

const { unique, call, json, expectProblem, login, makeUser, serviceClient } = createApiClient(() => server);
type AuditEvent = { id: string; event: string; userId: string | null; actorId: string | null; detail: unknown; createdAt: string };
const audit = async (query: string) => (await json(await call('GET', `/api/audit?${query}`, t.admin))) as { items: AuditEvent[]; total: number; page: number; pageSize: number };

beforeAll(async () => {
  server = await startTestServer();
  fixtures = await seed(server);
  const [admin, staff, dev] = await Promise.all([makeUser({ isAdmin: true, isStaff: true }), makeUser({ isStaff: true }), makeUser({ isDeveloper: true })]);
  Object.assign(ids, { admin: admin.id, staff: staff.id });
  Object.assign(t, { admin: (await login(admin.username)).access_token, staff: (await login(staff.username)).access_token, dev: (await login(dev.username)).access_token });
});
afterAll(() => server?.stop());

describe('/api/settings', () => {
  it('shows the runtime settings', async () => {
    const settings = await json(await call('GET', '/api/settings', t.admin));
    expect(settings).toMatchObject({ accessTokenTtl: expect.any(Number), registrationOpen: expect.any(Boolean), loginMaxFailuresPerAccount: expect.any(Number) });
  });

  it('accessTokenTtl 45 applies to the next login and code flow without a restart', async () => {
    const before = await json(await call('GET', '/api/settings', t.admin));
    const res = await call('PATCH', '/api/settings', t.admin, { accessTokenTtl: 45 });
    expect(res.status).toBe(200);
    expect(await json(res)).toMatchObject({ ...before, accessTokenTtl: 45 });
    expect((await json(await call('GET', '/api/settings', t.admin))).accessTokenTtl).toBe(45);

    const u = await makeUser();
    expect((await login(u.username)).expires_in).toBe(45);
    const codeFlow = await (await signIn(await relyingParty(server, fixtures.trusted), { login: u.username })).tokens();
    expect(codeFlow.expires_in).toBe(45);

    expect((await call('PATCH', '/api/settings', t.admin, { accessTokenTtl: before.accessTokenTtl })).status).toBe(200);
    expect((await login(u.username)).expires_in).toBe(before.accessTokenTtl);
  });

  it.each([29, 0, -5, 45.5, 24 * 3600 + 1, '45', null])('refuses accessTokenTtl %s (400), changing nothing', async (value) => {
    const before = await json(await call('GET', '/api/settings', t.admin));
    const res = await call('PATCH', '/api/settings', t.admin, { accessTokenTtl: value, registrationOpen: !before.registrationOpen });
    await expectProblem(res.clone(), 400, 'VALIDATION_FAILED');
    expect((await json(res)).errors.map((e: { path: string }) => e.path)).toEqual(['accessTokenTtl']);
    expect(await json(await call('GET', '/api/settings', t.admin))).toEqual(before);
  });

  it('registrationOpen: false closes registration at once', async () => {
    expect((await call('PATCH', '/api/settings', t.admin, { registrationOpen: false })).status).toBe(200);
    const email = `${unique('reg')}@example.com`;
    await expectProblem(await call('POST', '/api/auth/register', undefined, { email, password: 'sunny plains garage 7' }), 403, 'REGISTRATION_CLOSED');
    expect((await call('PATCH', '/api/settings', t.admin, { registrationOpen: true })).status).toBe(200);
    expect((await call('POST', '/api/auth/register', undefined, { email, password: 'sunny plains garage 7' })).status).toBe(201);
  });

  it('an admin service may change settings; the audit log names it as the actor', async () => {
    const service = await serviceClient();
    expect((await call('PATCH', '/api/settings', service.token, { loginThrottleWindow: 321 })).status).toBe(200);
    expect((await json(await call('GET', '/api/settings', service.token))).loginThrottleWindow).toBe(321);
    const { items } = await audit('event=admin.settings_updated');
    expect(items[0]).toMatchObject({ actorId: `client:${service.clientId}`, detail: { loginThrottleWindow: 321 } });
  });
});

describe('/api/audit', () => {
  it('filters by user, event and time, newest first, with the admin as actor', async () => {
    const start = new Date(Date.now() - 1000).toISOString();
    const created = await json(await call('POST', '/api/users', t.admin, { username: unique('aud'), email: `${unique('aud')}@example.com`, password: PASSWORD, emailVerified: true }));
    await login(created.username);
    expect((await call('PATCH', `/api/users/${created.id}`, t.staff, { givenName: 'Audited', password: 'quiet orchard lantern 9' })).status).toBe(200);
    const end = new Date(Date.now() + 1000).toISOString();

    const mine = await audit(`userId=${created.id}`);
    expect(mine.items.map((e) => e.event)).toEqual(['admin.user_updated', 'login.success', 'admin.user_created']);
    expect(mine.total).toBe(3);
    expect(mine.items.every((e) => e.userId === created.id)).toBe(true);
    expect(mine.items.map((e) => e.actorId)).toEqual([ids.staff, created.id, ids.admin]);
    expect(JSON.stringify(mine)).not.toContain('quiet orchard lantern 9');
    expect(mine.items[0]!.detail).toEqual({ fields: ['givenName', 'password'], changes: { givenName: { from: null, to: 'Audited' }, password: { changed: true } } });

    const byEvent = await audit(`event=admin.user_created&userId=${created.id}`);
    expect(byEvent.items).toEqual([expect.objectContaining({ event: 'admin.user_created', actorId: ids.admin })]);
    const allCreations = await audit('event=admin.user_created');
    expect(allCreations.items.every((e) => e.event === 'admin.user_created')).toBe(true);

    expect((await audit(`userId=${created.id}&from=${start}&to=${end}`)).total).toBe(3);
    expect((await audit(`userId=${created.id}&from=${end}`)).total).toBe(0);
    expect((await audit(`userId=${created.id}&to=${start}`)).total).toBe(0);

    const page1 = await audit(`userId=${created.id}&pageSize=2`);
    const page2 = await audit(`userId=${created.id}&pageSize=2&page=2`);
    expect([...page1.items, ...page2.items].map((e) => e.id)).toEqual(mine.items.map((e) => e.id));
    expect(page2).toMatchObject({ total: 3, page: 2, pageSize: 2 });
  });

  it('refuses a filter from year 0000, which PostgreSQL has not, with a 400', async () => {
    await expectProblem(await call('GET', '/api/audit?from=0000-01-01T00:00:00Z', t.admin), 400, 'VALIDATION_FAILED');
    expect((await call('GET', '/api/audit?from=0001-01-01T00:00:00Z', t.admin)).status).toBe(200);
  });

  it('records what a user or an app was created with: roles, trust and scopes, as an edit would', async () => {
    const boss = await json(await call('POST', '/api/users', t.admin, { username: unique('boss'), email: `${unique('boss')}@example.com`, password: PASSWORD, isAdmin: true, isStaff: true, emailVerified: true }));
    const [userEvent] = (await audit(`event=admin.user_created&userId=${boss.id}`)).items;
    expect(userEvent!.detail).toEqual({ changes: expect.objectContaining({ isAdmin: { from: null, to: true }, isStaff: { from: null, to: true }, emailVerified: { from: null, to: true }, active: { from: null, to: true } }) });
    expect(JSON.stringify(userEvent)).not.toContain(PASSWORD);

    const robot = await json(await call('POST', '/api/apps', t.admin, { name: unique('Robot '), grantTypes: ['client_credentials'], scopes: ['latch:admin'] }));
    const appEvent = (await audit('event=admin.app_created')).items.find((e) => (e.detail as { clientId?: string }).clientId === robot.clientId);
    expect(appEvent!.detail).toMatchObject({ changes: { scopes: { from: null, to: ['latch:admin'] }, grantTypes: { from: null, to: ['client_credentials'] }, trusted: { from: null, to: false } } });
  });

  it('answers a page past the last with no items, and refuses a page number past a million', async () => {
    expect(await audit('page=1000000&pageSize=100')).toMatchObject({ items: [], page: 1000000 });
    await expectProblem(await call('GET', '/api/audit?page=900719925474099', t.admin), 400, 'VALIDATION_FAILED');
    // Pages hold at most 100, as on every list.
    await expectProblem(await call('GET', '/api/audit?pageSize=101', t.admin), 400, 'VALIDATION_FAILED');
  });

  it("names an API key's app as the actor of what the key did", async () => {
    const app = await json(await call('POST', '/api/apps', t.dev, { name: unique('Audited '), redirectUris: [REDIRECT_URI] }));
    const { key } = await json(await call('POST', `/api/apps/${app.clientId}/api-keys`, t.dev));
    expect((await call('PATCH', `/api/apps/${app.clientId}`, key, { name: unique('Renamed ') })).status).toBe(200);
    const { items } = await audit('event=admin.app_updated');
    expect(items[0]).toMatchObject({ actorId: `client:${app.clientId}`, detail: { clientId: app.clientId, fields: ['name'] } });
  });
});

describe('/api/sessions', () => {
  /** A user signed in to `client` in a browser; returns the user and the browser. */
  async function browser(client: { clientId: string; clientSecret?: string } = fixtures.trusted) {
    const u = await makeUser();
    const rp = await relyingParty(server, client);
    const { agent } = await signIn(rp, { login: u.username });
    // Whether the browser is still signed in: a prompt=none request comes back with a code.
    const signedIn = async () => {
      const page = await agent.navigate((await authorizationRequest(rp, { prompt: 'none' })).url, {}, REDIRECT_URI);
      return new URL(page.url).searchParams.has('code');
    };
    return { user: u, signedIn };
  }

  it("lists a user's browser sessions with their apps; DELETE ends one at once", async () => {
    const { user, signedIn } = await browser();
    expect(await signedIn()).toBe(true);
    const { items } = await json(await call('GET', `/api/sessions?userId=${user.id}`, t.admin));
    expect(items).toEqual([{ id: expect.any(String), userId: user.id, signedInAt: expect.any(String), expiresAt: expect.any(String), clients: [fixtures.trusted.clientId] }]);

    expect((await call('DELETE', `/api/sessions/${items[0].id}`, t.admin)).status).toBe(204);
    expect((await json(await call('GET', `/api/sessions?userId=${user.id}`, t.admin))).items).toEqual([]);
    expect(await signedIn()).toBe(false);
    await expectProblem(await call('DELETE', `/api/sessions/${items[0].id}`, t.admin), 404, 'NOT_FOUND');
    const { items: events } = await audit('event=admin.session_revoked');
    expect(events[0]).toMatchObject({ actorId: ids.admin, detail: { sessionId: items[0].id } });
  });

  it('ends the tokens signed in with the session, at /api as at introspection; those with offline_access outlive it', async () => {
    const u = await makeUser({ isStaff: true });
    const rp = await relyingParty(server, fixtures.trusted);
    const online = await (await signIn(rp, { login: u.username })).tokens();
    const offline = await (await signIn(rp, { login: u.username, params: { scope: 'openid offline_access', prompt: 'consent' } })).tokens();
    expect(offline.refresh_token).toBeTruthy();
    for (const set of [online, offline]) expect((await call('GET', '/api/users', set.access_token)).status).toBe(200);

    const { items } = await json(await call('GET', `/api/sessions?userId=${u.id}`, t.admin));
    for (const s of items) expect((await call('DELETE', `/api/sessions/${s.id}`, t.admin)).status).toBe(204);

    // The staff member's browser sign-in no longer reaches the API, nor introspects as active.
    await expectProblem(await call('GET', '/api/users', online.access_token), 401, 'UNAUTHENTICATED');
    const rs = await relyingParty(server, fixtures.confidential);
    expect((await oidc.tokenIntrospection(rs, online.access_token)).active).toBe(false);
    // A sign-in with offline_access was asked to last beyond the browser session, as signing out leaves it.
    const refreshed = await oidc.refreshTokenGrant(rp, offline.refresh_token!);
    expect((await call('GET', '/api/users', refreshed.access_token)).status).toBe(200);
  });

  it('does not complete a sign-in whose password was checked before the user was signed out everywhere', async () => {
    const u = await makeUser();
    // A trusted app asks for no consent: the checked password alone would complete the sign-in.
    const rp = await relyingParty(server, fixtures.trusted);
    const agent = createUserAgent();
    const request = await authorizationRequest(rp);
    const login = await agent.navigate(request.url, {}, REDIRECT_URI);
    // The password is right; the browser stops before going back to the authorization.
    const checked = await agent.submit(login, '/login', { login: u.username, password: PASSWORD }, `${server.issuer}/auth/`);
    expect(checked.url).toContain(`${server.issuer}/auth/`);

    expect((await call('PATCH', `/api/users/${u.id}`, t.admin, { password: 'sunny plains garage 7' })).status).toBe(200);
    const resumed = await agent.navigate(checked.url, {}, REDIRECT_URI);
    expect(resumed.url.startsWith(REDIRECT_URI) && new URL(resumed.url).searchParams.has('code')).toBe(false);
  });

  it('pages sessions and grants, with the total, also when filtered by app', async () => {
    const u = await makeUser();
    const rp = await relyingParty(server, fixtures.trusted);
    for (let i = 0; i < 3; i += 1) await signIn(rp, { login: u.username });
    const get = async (path: string) => json(await call('GET', path, t.admin));
    for (const filter of [`userId=${u.id}`, `userId=${u.id}&clientId=${fixtures.trusted.clientId}`]) {
      const first = await get(`/api/sessions?${filter}&pageSize=2`);
      expect(first).toMatchObject({ total: 3, page: 1, pageSize: 2 });
      expect(first.items).toHaveLength(2);
      const second = await get(`/api/sessions?${filter}&pageSize=2&page=2`);
      expect(second.items).toHaveLength(1);
      expect(second.items[0].id).not.toBe(first.items[0].id);
      expect(second.items[0].id).not.toBe(first.items[1].id);
    }
    const grants = await get(`/api/grants?userId=${u.id}&pageSize=1`);
    expect(grants.items).toHaveLength(1);
    expect(grants.total).toBeGreaterThanOrEqual(1);
    await expectProblem(await call('GET', '/api/sessions?pageSize=101', t.admin), 400, 'VALIDATION_FAILED');
    // An empty filter (a blank form field) filters nothing.
    const all = await get('/api/sessions?pageSize=1');
    expect(await get('/api/sessions?userId=&pageSize=1')).toMatchObject({ total: all.total });
    expect(all.total).toBeGreaterThanOrEqual(3);
  });

  it('filters sessions by client', async () => {
    const viaNotes = await browser(fixtures.confidential);
    const viaConsole = await browser();
    const { items } = await json(await call('GET', `/api/sessions?clientId=${fixtures.confidential.clientId}`, t.admin));
    const users = items.map((s: { userId: string }) => s.userId);
    expect(users).toContain(viaNotes.user.id);
    expect(users).not.toContain(viaConsole.user.id);
    expect(items.every((s: { clients: string[] }) => s.clients.includes(fixtures.confidential.clientId))).toBe(true);
  });

  it('answers 404 for unknown ids and for ids of other kinds of rows', async () => {
    const u = await makeUser();
    await login(u.username);
    const { items: grants } = await json(await call('GET', `/api/grants?userId=${u.id}`, t.admin));
    for (const id of ['unknown', grants[0].id]) await expectProblem(await call('DELETE', `/api/sessions/${id}`, t.admin), 404, 'NOT_FOUND');
  });
});

describe('/api/grants', () => {
  it("lists users' grants, filtered by user and client", async () => {
    const u = await makeUser();
    await login(u.username);
    const notes = await (await signIn(await relyingParty(server, fixtures.confidential), { login: u.username })).tokens();
    expect(notes.access_token).toBeTruthy();

    const { items } = await json(await call('GET', `/api/grants?userId=${u.id}`, t.admin));
    expect(items.map((g: { clientId: string }) => g.clientId).sort()).toEqual([fixtures.confidential.clientId, 'latch-api'].sort());
    for (const g of items) expect(g).toMatchObject({ userId: u.id, scope: expect.stringContaining('openid'), createdAt: expect.any(String) });

    const byClient = await json(await call('GET', `/api/grants?userId=${u.id}&clientId=latch-api`, t.admin));
    expect(byClient.items).toEqual([expect.objectContaining({ clientId: 'latch-api', userId: u.id })]);
  });

  it('DELETE revokes a grant with every token issued under it, and nothing else', async () => {
    const u = await makeUser();
    const api = await login(u.username);
    const notes = await (await signIn(await relyingParty(server, fixtures.confidential), { login: u.username })).tokens();
    const { items } = await json(await call('GET', `/api/grants?userId=${u.id}&clientId=latch-api`, t.admin));

    expect((await call('DELETE', `/api/grants/${items[0].id}`, t.admin)).status).toBe(204);
    expect((await call('GET', '/api/me', api.access_token)).status).toBe(401);
    expect((await call('POST', '/api/auth/refresh', undefined, { refresh_token: api.refresh_token })).status).toBe(400);
    const rp = await relyingParty(server, fixtures.confidential);
    expect((await oidc.tokenIntrospection(rp, notes.access_token)).active).toBe(true);
    expect((await json(await call('GET', `/api/grants?userId=${u.id}`, t.admin))).items.map((g: { clientId: string }) => g.clientId)).toEqual([fixtures.confidential.clientId]);

    await expectProblem(await call('DELETE', `/api/grants/${items[0].id}`, t.admin), 404, 'NOT_FOUND');
    await expectProblem(await call('DELETE', '/api/grants/unknown', t.admin), 404, 'NOT_FOUND');
    const { items: events } = await audit('event=admin.grant_revoked');
    expect(events[0]).toMatchObject({ actorId: ids.admin, detail: { grantId: items[0].id } });
  });
});
