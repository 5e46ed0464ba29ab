import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as oidc from 'openid-client';
import { startTestServer, type TestServer } from '../support/server.js';
import { PASSWORD, REDIRECT_URI, relyingParty, seed, signIn } from '../support/oidc.js';
import { createUserAgent } from '../support/user-agent.js';
import { createApiClient } from '../support/api-client.js';

// Who may call what: every /api route of the registry against every kind of caller, with the
// effect of each allowed call read back. Detailed rules live in management-{users,apps,admin}.

let server: TestServer;
let fixtures: Awaited<ReturnType<typeof seed>>;

type Who = 'anon' | 'third' | 'noScope' | 'user' | 'dev' | 'dev2' | 'staff' | 'admin' | 'service' | 'keyA' | 'keyB';
const tokens = {} as Record<Who, string | undefined>;
const ids = {} as { admin: string; user: string; staff: string; appA: string; connection: string; appAConnection: string };
// A session and a grant that forbidden DELETE calls aim at; they must survive.
const victims = {} as { session: { id: string; userId: string }; grant: { id: string; userId: string } };
const { next, unique, call, json, login, makeUser, makeApp, makeKey, serviceClient } = createApiClient(() => server, { user: { givenName: 'Gus' } });
const as = (who: Who) => tokens[who];

/** A fresh browser session of a fresh user (signed in to a trusted client); returns its id and user. */
async function browserSession() {
  const user = await makeUser();
  const rp = await relyingParty(server, fixtures.trusted);
  await signIn(rp, { login: user.username, agent: createUserAgent() });
  const row = await server.prisma.oidcPayload.findFirst({ where: { model: 'Session', accountId: user.id } });
  expect(row).toBeTruthy();
  return { id: row!.id, userId: user.id };
}
/** A fresh grant (an /api/auth/login) of a fresh user; returns its id and the access token. */
async function loginGrant() {
  const user = await makeUser();
  const t = await login(user.username);
  const row = await server.prisma.oidcPayload.findFirst({ where: { model: 'Grant', accountId: user.id } });
  expect(row).toBeTruthy();
  return { id: row!.id, userId: user.id, accessToken: t.access_token };
}

/** A client-credentials token of a client registered with the latch:admin scope. */
const serviceToken = async (name: string) => (await serviceClient(name)).token;

beforeAll(async () => {
  server = await startTestServer();
  fixtures = await seed(server);
  const [user, dev, dev2, staff, admin] = await Promise.all([
    makeUser(),
    makeUser({ isDeveloper: true }),
    makeUser({ isDeveloper: true }),
    makeUser({ isStaff: true }),
    makeUser({ isAdmin: true, isStaff: true }),
  ]);
  Object.assign(ids, { admin: admin.id, user: user.id, staff: staff.id });
  for (const [who, u] of [['user', user], ['dev', dev], ['dev2', dev2], ['staff', staff], ['admin', admin]] as const) tokens[who] = (await login(u.username)).access_token;

  // A user token of a third-party (untrusted) client, from the authorization-code flow.
  tokens.third = (await (await signIn(await relyingParty(server, fixtures.confidential))).tokens()).access_token;

  // Left undefined when the grant fails, so that only the service rows fail (see 'credentials').
  tokens.service = await serviceToken('Ops robot').catch(() => undefined);
  const plain = await server.clients.create({ name: 'Plain robot', grantTypes: ['client_credentials'] });
  tokens.noScope = (await oidc.clientCredentialsGrant(await relyingParty(server, plain))).access_token;

  const [a, b] = [await makeApp(as('dev')!, { name: 'App A' }), await makeApp(as('dev')!, { name: 'App B' })];
  ids.appA = a.clientId;
  tokens.keyA = await makeKey(a.clientId, as('dev'));
  tokens.keyB = await makeKey(b.clientId, as('dev'));
  ids.connection = (await server.connections.create(sso())).id;
  ids.appAConnection = (await server.connections.create(sso(), a.clientId)).id;
  victims.session = await browserSession();
  victims.grant = await loginGrant();
});
afterAll(() => server?.stop());

type Prepared = { path: string; body?: unknown; token?: string; after?: (res: Response) => Promise<void> };
type Row = {
  method: string;
  path: string;
  expected: Partial<Record<Who, number>>;
  /** Builds the request for one caller; `after` reads the effect back when the call was allowed. */
  prepare?: (who: Who) => Promise<Prepared>;
  /** Its credential is not a bearer token, so its 401 sends no Bearer challenge. */
  notBearer?: true;
};

const OK = 200;
const bearer = { anon: 401, third: 403, noScope: 403 } as const;
const staffOnly = (ok: number) => ({ ...bearer, user: 403, dev: 403, keyA: 403, keyB: 403, staff: ok, admin: ok, service: ok });
const adminOnly = (ok: number) => ({ ...bearer, user: 403, dev: 403, staff: 403, keyA: 403, keyB: 403, admin: ok, service: ok });
// App A belongs to `dev`; keyB, dev2, staff and plain users don't see it.
const appA = (ok: number) => ({ ...bearer, user: 404, staff: 404, dev2: 404, keyB: 404, dev: ok, keyA: ok, admin: ok, service: ok });
const selfOnly = (ok: number) => ({ ...bearer, service: 403, keyA: 403, user: ok });

/** For self-service calls: a fresh user's first-party token, so destructive calls hurt no one. */
const freshSelf = (path: string, body?: unknown, after?: (token: string) => (res: Response) => Promise<void>) => async (who: Who): Promise<Prepared> => {
  if (who !== 'user') return { path, body };
  const u = await makeUser();
  const token = (await login(u.username)).access_token;
  return { path, body, token, after: after?.(token) };
};
/** A fresh app of `dev` (with its own key when the caller is `keyA`), for destructive calls. */
const freshApp = (suffix: string, after?: (appId: string) => (res: Response) => Promise<void>) => async (who: Who): Promise<Prepared> => {
  const app = await makeApp(as('dev')!);
  const token = who === 'keyA' ? await makeKey(app.clientId, as('dev')) : undefined;
  return { path: `/api/apps/${app.clientId}${suffix}`, token, after: after?.(app.clientId) };
};
/** An upstream OpenID provider needing no client secret (so no CONNECTION_SECRET_KEYS here). */
const sso = () => ({ kind: 'oidc' as const, slug: unique('sso-').toLowerCase(), name: 'SSO', clientId: 'public-client', issuer: 'https://sso.example.com' });
const reread = (path: string, check: (body: Record<string, any>, status: number) => void) => async () => {
  const res = await call('GET', path, as('admin'));
  check(res.status === 200 ? await json(res) : {}, res.status);
};

const ROUTES: Row[] = [
  // Users: staff and admins; only admins delete.
  { method: 'GET', path: '/api/users', expected: staffOnly(OK) },
  {
    method: 'POST',
    path: '/api/users',
    expected: staffOnly(201),
    prepare: async () => {
      const username = unique('new');
      return { path: '/api/users', body: { username, email: `${username}@example.com`, password: PASSWORD }, after: async (res) => {
        const { id } = await json(res);
        await reread(`/api/users/${id}`, (u) => expect(u).toMatchObject({ username, email: `${username}@example.com` }))();
      } };
    },
  },
  { method: 'GET', path: '/api/users/:id', expected: staffOnly(OK), prepare: async () => ({ path: `/api/users/${ids.user}` }) },
  {
    method: 'PATCH',
    path: '/api/users/:id',
    expected: staffOnly(OK),
    prepare: async (who) => ({ path: `/api/users/${ids.user}`, body: { name: `by ${who}` }, after: reread(`/api/users/${ids.user}`, (u) => expect(u.name).toBe(`by ${who}`)) }),
  },
  {
    method: 'PUT',
    path: '/api/users/:id',
    expected: staffOnly(OK),
    prepare: async (who) => {
      const u = await makeUser();
      return { path: `/api/users/${u.id}`, body: { email: u.email, familyName: who }, after: reread(`/api/users/${u.id}`, (b) => expect(b).toMatchObject({ familyName: who, givenName: null })) };
    },
  },
  {
    method: 'DELETE',
    path: '/api/users/:id',
    expected: { ...adminOnly(204), staff: 403 },
    prepare: async () => {
      const u = await makeUser();
      return { path: `/api/users/${u.id}`, after: reread(`/api/users/${u.id}`, (_b, status) => expect(status).toBe(404)) };
    },
  },

  // Apps: developers' own apps; admins all; an API key only its own app.
  { method: 'GET', path: '/api/apps', expected: { ...bearer, user: 403, staff: 403, dev: OK, dev2: OK, keyA: OK, keyB: OK, admin: OK, service: OK } },
  {
    method: 'POST',
    path: '/api/apps',
    expected: { ...bearer, user: 403, staff: 403, keyA: 403, keyB: 403, dev: 201, dev2: 201, admin: 201, service: 201 },
    prepare: async () => ({ path: '/api/apps', body: { name: unique('Made '), redirectUris: [REDIRECT_URI] }, after: async (res) => {
      const created = await json(res);
      expect(created.clientSecret).toEqual(expect.any(String));
      await reread(`/api/apps/${created.clientId}`, (app) => expect(app).toMatchObject({ clientId: created.clientId, redirectUris: [REDIRECT_URI] }))();
    } }),
  },
  { method: 'GET', path: '/api/apps/:id', expected: appA(OK), prepare: async () => ({ path: `/api/apps/${ids.appA}` }) },
  {
    method: 'PATCH',
    path: '/api/apps/:id',
    expected: appA(OK),
    prepare: async (who) => {
      const uri = `http://127.0.0.1:9/bye/${who}`;
      return { path: `/api/apps/${ids.appA}`, body: { postLogoutRedirectUris: [uri] }, after: reread(`/api/apps/${ids.appA}`, (app) => expect(app.postLogoutRedirectUris).toEqual([uri])) };
    },
  },
  {
    method: 'DELETE',
    path: '/api/apps/:id',
    // An API key acts for its app but may not delete it: its own app answers 403, others' 404.
    expected: { ...appA(204), keyA: 403 },
    prepare: freshApp('', (appId) => reread(`/api/apps/${appId}`, (_b, status) => expect(status).toBe(404))),
  },
  {
    method: 'POST',
    path: '/api/apps/:id/secret',
    expected: appA(OK),
    prepare: freshApp('/secret', (appId) => async (res) => {
      const { clientSecret } = await json(res);
      const rp = await relyingParty(server, { clientId: appId, clientSecret });
      expect((await oidc.clientCredentialsGrant(rp)).access_token).toBeTruthy();
    }),
  },
  { method: 'POST', path: '/api/apps/:id/revoke', expected: appA(OK), prepare: async () => ({ path: `/api/apps/${ids.appA}/revoke`, after: async (res) => expect((await json(res)).revoked).toEqual(expect.any(Number)) }) },
  { method: 'GET', path: '/api/apps/:id/api-keys', expected: appA(OK), prepare: async () => ({ path: `/api/apps/${ids.appA}/api-keys` }) },
  {
    method: 'POST',
    path: '/api/apps/:id/api-keys',
    expected: { ...appA(201) },
    prepare: freshApp('/api-keys', (appId) => async (res) => {
      const { key } = await json(res);
      expect(key).toMatch(/^latch_/);
      expect((await call('GET', `/api/apps/${appId}`, key)).status).toBe(200);
    }),
  },
  { method: 'GET', path: '/api/apps/:id/users', expected: appA(OK), prepare: async () => ({ path: `/api/apps/${ids.appA}/users` }) },

  // Settings, audit, sessions, grants: admins and admin services only.
  { method: 'GET', path: '/api/settings', expected: adminOnly(OK) },
  {
    method: 'PATCH',
    path: '/api/settings',
    expected: adminOnly(OK),
    prepare: async (who) => {
      const window = 60 + next();
      return { path: '/api/settings', body: { loginThrottleWindow: window }, after: reread('/api/settings', (s) => expect(s.loginThrottleWindow, who).toBe(window)) };
    },
  },
  { method: 'GET', path: '/api/audit', expected: adminOnly(OK) },
  { method: 'GET', path: '/api/sessions', expected: adminOnly(OK) },
  {
    method: 'DELETE',
    path: '/api/sessions/:id',
    expected: adminOnly(204),
    prepare: async (who) => {
      if (who !== 'admin' && who !== 'service') return { path: `/api/sessions/${victims.session.id}` };
      const { id } = await browserSession();
      return { path: `/api/sessions/${id}`, after: reread('/api/sessions', (s) => expect(s.items.map((i: { id: string }) => i.id)).not.toContain(id)) };
    },
  },
  { method: 'GET', path: '/api/grants', expected: adminOnly(OK) },
  {
    method: 'DELETE',
    path: '/api/grants/:id',
    expected: adminOnly(204),
    prepare: async (who) => {
      if (who !== 'admin' && who !== 'service') return { path: `/api/grants/${victims.grant.id}` };
      const grant = await loginGrant();
      return { path: `/api/grants/${grant.id}`, after: async () => expect((await call('GET', '/api/me', grant.accessToken)).status).toBe(401) };
    },
  },

  // Upstream login providers: global ones for admins, an app's own for whoever manages the app.
  { method: 'GET', path: '/api/connections', expected: adminOnly(OK) },
  {
    method: 'POST',
    path: '/api/connections',
    expected: adminOnly(201),
    prepare: async () => ({ path: '/api/connections', body: sso(), after: async (res) => reread(`/api/connections/${(await json(res)).id}`, (c) => expect(c.appId).toBeNull())() }),
  },
  { method: 'GET', path: '/api/connections/:id', expected: adminOnly(OK), prepare: async () => ({ path: `/api/connections/${ids.connection}` }) },
  {
    method: 'PATCH',
    path: '/api/connections/:id',
    expected: adminOnly(OK),
    prepare: async (who) => ({ path: `/api/connections/${ids.connection}`, body: { name: `SSO by ${who}` }, after: reread(`/api/connections/${ids.connection}`, (c) => expect(c.name).toBe(`SSO by ${who}`)) }),
  },
  {
    method: 'DELETE',
    path: '/api/connections/:id',
    expected: adminOnly(204),
    prepare: async () => {
      const { id } = await server.connections.create(sso());
      return { path: `/api/connections/${id}`, after: reread(`/api/connections/${id}`, (_c, status) => expect(status).toBe(404)) };
    },
  },
  { method: 'GET', path: '/api/apps/:id/connections', expected: appA(OK), prepare: async () => ({ path: `/api/apps/${ids.appA}/connections` }) },
  {
    method: 'POST',
    path: '/api/apps/:id/connections',
    expected: appA(201),
    prepare: async () => ({ path: `/api/apps/${ids.appA}/connections`, body: sso(), after: async (res) => expect(await json(res)).toMatchObject({ appId: ids.appA, offered: true }) }),
  },
  {
    method: 'PATCH',
    path: '/api/apps/:id/connections/:connectionId',
    expected: appA(OK),
    prepare: async (who) => ({ path: `/api/apps/${ids.appA}/connections/${ids.appAConnection}`, body: { name: `Own by ${who}` }, after: reread(`/api/connections/${ids.appAConnection}`, (c) => expect(c.name).toBe(`Own by ${who}`)) }),
  },
  {
    method: 'PUT',
    path: '/api/apps/:id/connections/:connectionId',
    expected: appA(OK),
    prepare: async () => ({ path: `/api/apps/${ids.appA}/connections/${ids.connection}`, after: async (res) => expect((await json(res)).offered).toBe(true) }),
  },
  {
    method: 'DELETE',
    path: '/api/apps/:id/connections/:connectionId',
    expected: appA(204),
    prepare: async () => {
      const { id } = await server.connections.create(sso(), ids.appA);
      return { path: `/api/apps/${ids.appA}/connections/${id}`, after: reread(`/api/connections/${id}`, (_c, status) => expect(status).toBe(404)) };
    },
  },

  // Monitoring: the service token's header only (ops.test.ts); no bearer token, an admin's included, opens it.
  { method: 'GET', path: '/api/status', expected: { anon: 401, user: 401, keyA: 401, admin: 401, service: 401 }, notBearer: true },

  // Self-service: only a user's first-party token.
  { method: 'GET', path: '/api/me', expected: selfOnly(OK) },
  { method: 'PATCH', path: '/api/me', expected: selfOnly(OK), prepare: freshSelf('/api/me', { familyName: 'Patched' }, (t) => async () => expect((await json(await call('GET', '/api/me', t))).familyName).toBe('Patched')) },
  {
    method: 'PUT',
    path: '/api/me',
    expected: selfOnly(OK),
    prepare: async (who) => {
      const p = await freshSelf('/api/me')(who);
      const email = `${unique('put')}@example.com`;
      // The new address waits for its confirmation link; the rest applies at once.
      return { ...p, body: { email, name: 'Put', currentPassword: PASSWORD }, after: p.token ? async () => expect(await json(await call('GET', '/api/me', p.token))).toMatchObject({ pendingEmail: email, name: 'Put', givenName: null }) : undefined };
    },
  },
  { method: 'DELETE', path: '/api/me', expected: selfOnly(204), prepare: freshSelf('/api/me', { currentPassword: PASSWORD }, (t) => async () => expect((await call('GET', '/api/me', t)).status).toBe(401)) },
  { method: 'POST', path: '/api/me/password', expected: selfOnly(204), prepare: freshSelf('/api/me/password', { currentPassword: PASSWORD, newPassword: 'sunny plains garage 7' }) },
  { method: 'POST', path: '/api/me/verification', expected: selfOnly(202), prepare: freshSelf('/api/me/verification') },
  { method: 'GET', path: '/api/me/activity', expected: selfOnly(OK), prepare: freshSelf('/api/me/activity') },
  { method: 'GET', path: '/api/me/identities', expected: selfOnly(OK), prepare: freshSelf('/api/me/identities') },
  {
    method: 'DELETE',
    path: '/api/me/identities/:id',
    expected: selfOnly(204),
    prepare: async (who) => {
      const p = await freshSelf('/api/me')(who);
      const userId = p.token ? (await json(await call('GET', '/api/me', p.token))).id : ids.user;
      const identity = await server.prisma.federatedIdentity.create({ data: { connectionId: ids.connection, subject: unique('sub-'), userId } });
      return { ...p, path: `/api/me/identities/${identity.id}`, after: async () => expect(await server.prisma.federatedIdentity.count({ where: { id: identity.id } })).toBe(0) };
    },
  },
];

describe.each(ROUTES.map((row) => [`${row.method} ${row.path}`, row] as const))('%s', (_name, row) => {
  it.each(Object.entries(row.expected) as [Who, number][])('as %s → %i', async (who, status) => {
    const prepared = row.prepare ? await row.prepare(who) : { path: row.path };
    const token = prepared.token ?? as(who);
    const res = await call(row.method, prepared.path, token, prepared.body);
    expect(res.status, await res.clone().text()).toBe(status);
    if (status >= 400) {
      expect(res.headers.get('content-type')).toContain('application/problem+json');
      expect((await json(res)).code).toBe({ 401: 'UNAUTHENTICATED', 403: 'FORBIDDEN', 404: 'CLIENT_NOT_FOUND' }[status]);
      if (status === 401 && !row.notBearer) expect(res.headers.get('www-authenticate')).toMatch(/^Bearer /);
      return;
    }
    await prepared.after?.(res);
  });
});

describe('forbidden calls change nothing', () => {
  it('leaves the victim session and grant in place', async () => {
    const sessions = await json(await call('GET', `/api/sessions?userId=${victims.session.userId}`, as('admin')));
    expect(sessions.items.map((s: { id: string }) => s.id)).toEqual([victims.session.id]);
    const grants = await json(await call('GET', `/api/grants?userId=${victims.grant.userId}`, as('admin')));
    expect(grants.items.map((g: { id: string }) => g.id)).toEqual([victims.grant.id]);
  });
});

describe('credentials', () => {
  it('refuses garbage, unknown API keys and other schemes with 401', async () => {
    for (const authorization of ['Bearer nope', 'Bearer latch_unknown', 'Basic YTpi', `Bearer ${as('admin')} extra`, 'Bearer']) {
      const res = await fetch(`${server.url}/api/users`, { headers: { authorization } });
      expect(res.status, authorization).toBe(401);
      expect(res.headers.get('www-authenticate')).toMatch(/^Bearer /);
    }
  });

  it('accepts a trusted client\'s code-flow token as the user', async () => {
    const adminUser = await server.users.findById(ids.admin);
    const t = await (await signIn(await relyingParty(server, fixtures.trusted), { login: adminUser!.username! })).tokens();
    expect((await call('GET', '/api/users', t.access_token)).status).toBe(200);
  });

  // A stolen DPoP-bound token must be useless without its key (RFC 9449 section 7.1); /api checks no
  // proofs, so it takes no such token, an admin's included.
  it('refuses DPoP-bound tokens presented as bearer tokens (401 invalid_token), user and service alike', async () => {
    const adminUser = await server.users.findById(ids.admin);
    const rp = await relyingParty(server, fixtures.trusted);
    const flow = await signIn(rp, { login: adminUser!.username! });
    const DPoP = oidc.getDPoPHandle(rp, await oidc.randomDPoPKeyPair());
    const { verifier, state, nonce } = flow.request;
    const bound = await oidc.authorizationCodeGrant(rp, new URL(flow.callbackUrl), { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce }, undefined, { DPoP });
    expect(bound.token_type).toBe('dpop');

    const robot = await serviceClient('Bound robot');
    const robotRp = await relyingParty(server, robot.client);
    const boundService = await oidc.clientCredentialsGrant(robotRp, { scope: 'latch:admin' }, { DPoP: oidc.getDPoPHandle(robotRp, await oidc.randomDPoPKeyPair()) });
    expect(boundService.token_type).toBe('dpop');

    for (const token of [bound.access_token, boundService.access_token]) {
      const res = await call('GET', '/api/users', token);
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toMatch(/^Bearer .*error="invalid_token"/);
      expect((await json(res)).detail).toMatch(/bound to a key/);
    }
    // The same sign-in without DPoP manages Latch as before.
    expect((await call('GET', '/api/users', robot.token)).status).toBe(200);
  });

  it('issues a client-credentials token with latch:admin to a client registered with that scope', async () => {
    await expect(serviceToken('Another robot')).resolves.toEqual(expect.any(String));
  });

  it('needs latch:admin both registered on the client and granted in the token', async () => {
    const robot = await server.clients.create({ name: 'Shy robot', grantTypes: ['client_credentials'], scopes: ['latch:admin'] });
    const unscoped = await oidc.clientCredentialsGrant(await relyingParty(server, robot));
    expect((await call('GET', '/api/users', unscoped.access_token)).status).toBe(403);
    // A client without the scope registered either is refused it, or its token is refused here.
    const plain = await server.clients.create({ name: 'Greedy robot', grantTypes: ['client_credentials'] });
    const greedy = await oidc.clientCredentialsGrant(await relyingParty(server, plain), { scope: 'latch:admin' }).catch(() => undefined);
    if (greedy) expect((await call('GET', '/api/users', greedy.access_token)).status).toBe(403);
  });
});

// Auth routes take no bearer token: each answers bad input with field errors.
const AUTH_ROUTES: [path: string, body: unknown, paths: string[]][] = [
  ['/api/auth/register', { email: 'nope' }, ['email', 'password']],
  ['/api/auth/login', { username: 'ada' }, ['password']],
  ['/api/auth/refresh', {}, ['refresh_token']],
  ['/api/auth/logout', { refresh_token: 7 }, ['refresh_token']],
  ['/api/auth/forgot-password', { email: 'x' }, ['email']],
  ['/api/auth/reset-password', { token: '' }, ['token', 'password']],
  ['/api/auth/magic-link', {}, ['email']],
  ['/api/auth/magic-link/verify', { token: 'x'.repeat(201) }, ['token']],
  ['/api/auth/verify-email', {}, ['token']],
];

describe('bad input gets 400 problem+json with errors[].path', () => {
  it.each(AUTH_ROUTES)('POST %s', async (path, body, paths) => {
    const res = await call('POST', path, undefined, body);
    expect(res.status).toBe(400);
    expect(res.headers.get('content-type')).toContain('application/problem+json');
    const problem = await json(res);
    expect(problem.code).toBe('VALIDATION_FAILED');
    expect(problem.errors.map((e: { path: string }) => e.path).sort()).toEqual(paths.sort());
  });

  const bad: [method: string, path: string, body: unknown, paths: string[]][] = [
    ['GET', '/api/users?page=0', undefined, ['page']],
    ['GET', '/api/users?pageSize=1000', undefined, ['pageSize']],
    ['GET', '/api/users?page=abc', undefined, ['page']],
    ['GET', '/api/users?search=a&search=b', undefined, ['search']],
    ['POST', '/api/users', {}, ['username', 'password', 'email']],
    ['POST', '/api/users', { username: 'ok', email: 'ok@example.com', password: PASSWORD, colour: 'red' }, ['']],
    ['POST', '/api/users', [], ['']],
    ['PATCH', '/api/users/:user', { email: 'not-an-email' }, ['email']],
    ['PATCH', '/api/users/:user', { isAdmin: 'yes' }, ['isAdmin']],
    ['PATCH', '/api/users/:user', { username: 'no spaces allowed' }, ['username']],
    ['PUT', '/api/users/:user', { name: 'no email' }, ['email']],
    ['POST', '/api/apps', { name: '' }, ['name']],
    ['POST', '/api/apps', { name: 'x', redirectUris: ['not a url'] }, ['redirectUris.0']],
    ['POST', '/api/apps', { name: 'x', redirectUris: [REDIRECT_URI], grantTypes: ['implicit'] }, ['grantTypes.0']],
    ['POST', '/api/apps', { name: 'x' }, ['redirectUris']],
    ['POST', '/api/apps', { name: 'x', public: true, grantTypes: ['client_credentials'] }, ['grantTypes']],
    ['PATCH', '/api/apps/:appA', { trusted: 'no' }, ['trusted']],
    ['PATCH', '/api/apps/:appA', { redirectUris: [] }, ['redirectUris']],
    ['PATCH', '/api/apps/:appA', { owner: 'me' }, ['']],
    ['PATCH', '/api/settings', { accessTokenTtl: 29 }, ['accessTokenTtl']],
    ['PATCH', '/api/settings', { accessTokenTtl: '45' }, ['accessTokenTtl']],
    ['PATCH', '/api/settings', { registrationOpen: 'yes', colour: 1 }, ['', 'registrationOpen']],
    ['GET', '/api/audit?from=yesterday', undefined, ['from']],
    ['GET', '/api/audit?pageSize=0', undefined, ['pageSize']],
    ['GET', '/api/sessions?userId=a&userId=b', undefined, ['userId']],
    ['GET', '/api/grants?clientId=a&clientId=b', undefined, ['clientId']],
  ];
  it.each(bad)('%s %s %j', async (method, path, body, paths) => {
    const res = await call(method, path.replace(':user', ids.user).replace(':appA', ids.appA), as('admin'), body);
    expect(res.status, await res.clone().text()).toBe(400);
    expect(res.headers.get('content-type')).toContain('application/problem+json');
    const problem = await json(res);
    expect(problem.code).toBe('VALIDATION_FAILED');
    expect(problem.errors.map((e: { path: string }) => e.path).sort()).toEqual(paths.sort());
  });

  // PostgreSQL cannot store or compare U+0000 (it answers 500 there); no name or filter needs one.
  const nul: [who: Who, method: string, path: string, body: unknown, field: string][] = [
    ['admin', 'POST', '/api/users', { username: 'nul', email: 'nul@example.com', password: PASSWORD, name: 'a\u0000b' }, 'name'],
    ['dev', 'POST', '/api/apps', { name: 'a\u0000b', redirectUris: [REDIRECT_URI] }, 'name'],
    ['user', 'PATCH', '/api/me', { givenName: 'x\u0000' }, 'givenName'],
    ['admin', 'GET', '/api/users?search=%00', undefined, 'search'],
    ['admin', 'GET', '/api/audit?event=%00', undefined, 'event'],
    ['admin', 'GET', '/api/grants?clientId=%00', undefined, 'clientId'],
  ];
  it.each(nul)('refuses a NUL character: %s %s %s', async (who, method, path, body, field) => {
    const res = await call(method, path, as(who), body);
    expect(res.status, await res.clone().text()).toBe(400);
    expect((await json(res)).errors.map((e: { path: string }) => e.path)).toEqual([field]);
  });

  it('answers a malformed JSON body with 400 problem+json', async () => {
    const res = await call('POST', '/api/users', as('admin'), '{"username": ');
    expect(res.status).toBe(400);
    expect(res.headers.get('content-type')).toContain('application/problem+json');
  });
});

describe('a caller who may not use a route gets 403 before any validation or lookup', () => {
  const cases: [who: Who, method: string, path: string, body?: unknown][] = [
    ['user', 'GET', '/api/users?page=0'],
    ['user', 'POST', '/api/users', {}],
    ['user', 'GET', '/api/users/unknown'],
    ['user', 'PATCH', '/api/users/unknown', { name: 'x' }],
    ['staff', 'DELETE', '/api/users/unknown'],
    ['user', 'POST', '/api/apps', { name: '' }],
    ['staff', 'PATCH', '/api/settings', { accessTokenTtl: 1 }],
    ['staff', 'GET', '/api/audit?from=yesterday'],
    ['staff', 'DELETE', '/api/sessions/unknown'],
    ['staff', 'DELETE', '/api/grants/unknown'],
  ];
  it.each(cases)('%s %s %s', async (who, method, path, body) => {
    const res = await call(method, path, as(who), body);
    expect(res.status, await res.clone().text()).toBe(403);
    expect((await json(res)).code).toBe('FORBIDDEN');
  });
});

describe('unknown ids answer 404, never 500', () => {
  const routes: [string, string, unknown?][] = [
    ['GET', '/api/users/:id'],
    ['PATCH', '/api/users/:id', { name: 'x' }],
    ['PUT', '/api/users/:id', { email: 'x@example.com' }],
    ['DELETE', '/api/users/:id'],
    ['GET', '/api/apps/:id'],
    ['PATCH', '/api/apps/:id', { name: 'x' }],
    ['DELETE', '/api/apps/:id'],
    ['POST', '/api/apps/:id/secret'],
    ['POST', '/api/apps/:id/revoke'],
    ['GET', '/api/apps/:id/api-keys'],
    ['POST', '/api/apps/:id/api-keys'],
    ['GET', '/api/apps/:id/users'],
    ['DELETE', '/api/sessions/:id'],
    ['DELETE', '/api/grants/:id'],
  ];
  const strangeIds: [label: string, id: string][] = [
    ['an unknown id', 'nope'],
    ['a 3000-character id', 'x'.repeat(3000)],
    ['a NUL byte', '%00'],
    ['quotes and SQL', encodeURIComponent("' OR 1=1 --")],
  ];
  const cases = routes.flatMap(([method, path, body]) => strangeIds.map(([label, id]) => [method, path, label, id, body] as const));
  it.each(cases)('%s %s with %s', async (method, path, _label, id, body) => {
    const res = await call(method, path.replace(':id', id), as('admin'), body);
    expect(res.status).toBe(404);
    expect(res.headers.get('content-type')).toContain('application/problem+json');
  });
});

describe('the OpenAPI document', () => {
  it('lists exactly the routes tested here', async () => {
    const res = await call('GET', '/api/openapi.json');
    expect(res.status).toBe(200);
    const doc = (await res.json()) as { paths: Record<string, Record<string, unknown>> };
    const documented = Object.entries(doc.paths).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`));
    const tested = [...ROUTES.map((r) => `${r.method} ${r.path}`), ...AUTH_ROUTES.map(([path]) => `POST ${path}`)].map((r) => r.replace(/:(\w+)/g, '{$1}'));
    expect(new Set(documented.sort())).toEqual(new Set(tested.sort()));
    expect(documented).toHaveLength(tested.length);
  });
});
