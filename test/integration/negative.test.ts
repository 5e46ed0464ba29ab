import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import * as oidc from 'openid-client';
import { startTestServer, type TestServer } from '../support/server.js';
import { PASSWORD, REDIRECT_URI, authorizationRequest, relyingParty, seed, signIn } from '../support/oidc.js';
import { createUserAgent, findForm } from '../support/user-agent.js';

let server: TestServer;
let fixtures: Awaited<ReturnType<typeof seed>>;

beforeAll(async () => {
  server = await startTestServer();
  fixtures = await seed(server);
});
afterAll(() => server?.stop());

const form = (fields: Record<string, string>) => ({
  method: 'POST',
  body: new URLSearchParams(fields),
  headers: { 'content-type': 'application/x-www-form-urlencoded' },
});

async function openLoginPage() {
  const rp = await relyingParty(server, fixtures.confidential);
  const agent = createUserAgent();
  const page = await agent.navigate((await authorizationRequest(rp)).url);
  expect(page.html).toContain('Email or username');
  return { agent, page };
}

describe('the authorization endpoint', () => {
  it('shows an error page, and never redirects, for an unregistered redirect URI', async () => {
    const rp = await relyingParty(server, fixtures.confidential);
    const { url } = await authorizationRequest(rp, { redirect_uri: 'https://attacker.example/cb' });
    const res = await fetch(url, { redirect: 'manual' });
    expect(res.status).toBe(400);
    expect(res.headers.get('location')).toBeNull();
    const html = await res.text();
    expect(html).toContain('redirect_uri did not match any of the client&#39;s registered redirect_uris');
    expect(html).not.toContain('attacker.example');
  });

  it('requires PKCE from public clients and accepts only S256', async () => {
    const rp = await relyingParty(server, fixtures.spa);
    const { url } = await authorizationRequest(rp, { code_challenge: '', code_challenge_method: '' });
    const noPkce = new URL(url);
    noPkce.searchParams.delete('code_challenge');
    noPkce.searchParams.delete('code_challenge_method');
    const res = await fetch(noPkce, { redirect: 'manual' });
    expect(new URL(res.headers.get('location')!).searchParams.get('error_description')).toMatch(/PKCE/);

    const plain = new URL(url);
    plain.searchParams.set('code_challenge', 'a'.repeat(43));
    plain.searchParams.set('code_challenge_method', 'plain');
    const res2 = await fetch(plain, { redirect: 'manual' });
    expect(new URL(res2.headers.get('location')!).searchParams.get('error')).toBe('invalid_request');
  });

  it('rejects a request without client_id with a clear 400 page', async () => {
    const res = await fetch(`${server.issuer}/auth?response_type=code&scope=openid`, { redirect: 'manual' });
    expect(res.status).toBe(400);
    expect(await res.text()).toContain('missing required parameter');
  });

  it('answers a pushed request holding a NUL character with invalid_request, not a 500', async () => {
    // The provider keeps a pushed request's parameters in the interaction it saves; PostgreSQL
    // cannot store a NUL, so the request is refused before anything is written.
    const rp = await relyingParty(server, fixtures.confidential);
    const params = { redirect_uri: REDIRECT_URI, scope: 'openid', code_challenge: 'x'.repeat(43), code_challenge_method: 'S256' };
    for (const field of ['state', 'nonce', 'login_hint']) {
      const url = await oidc.buildAuthorizationUrlWithPAR(rp, { ...params, state: 'some-state', [field]: 'a\u0000b' });
      const res = await fetch(url, { redirect: 'manual' });
      expect(res.status, field).toBe(303);
      const location = new URL(res.headers.get('location')!);
      expect(location.origin + location.pathname, field).toBe(REDIRECT_URI);
      expect(location.searchParams.get('error'), field).toBe('invalid_request');
      expect(location.searchParams.get('error_description'), field).toBe('NUL characters are not allowed');
    }
    // Without the NUL the same request reaches the login page.
    const res = await fetch(await oidc.buildAuthorizationUrlWithPAR(rp, { ...params, state: 'some-state' }), { redirect: 'manual' });
    expect(res.status).toBe(303);
    expect(new URL(res.headers.get('location')!, server.url).pathname).toMatch(/^\/interaction\//);
  });
});

describe('the token endpoint', () => {
  it('refuses a code used twice and revokes what the first use issued', async () => {
    const rp = await relyingParty(server, fixtures.confidential);
    const flow = await signIn(rp);
    const tokens = await flow.tokens();
    await expect(flow.tokens()).rejects.toMatchObject({ error: 'invalid_grant' });
    expect((await oidc.tokenIntrospection(rp, tokens.access_token)).active).toBe(false);
  });

  it('redeems a code sent by two requests at once for one of them only, and revokes what it issued', async () => {
    const rp = await relyingParty(server, fixtures.confidential);
    const flow = await signIn(rp);
    const [a, b] = await Promise.allSettled([flow.tokens(), flow.tokens()]);
    const won = [a, b].filter((r) => r.status === 'fulfilled');
    const lost = [a, b].filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    expect(won).toHaveLength(1);
    expect(lost[0]!.reason).toMatchObject({ error: 'invalid_grant' });
    const { access_token } = (won[0] as PromiseFulfilledResult<Awaited<ReturnType<typeof flow.tokens>>>).value;
    expect((await oidc.tokenIntrospection(rp, access_token)).active).toBe(false);
  });

  it('refuses a wrong PKCE verifier', async () => {
    const rp = await relyingParty(server, fixtures.confidential);
    const flow = await signIn(rp);
    await expect(
      oidc.authorizationCodeGrant(rp, new URL(flow.callbackUrl), {
        pkceCodeVerifier: oidc.randomPKCECodeVerifier(),
        expectedState: flow.request.state,
      }),
    ).rejects.toMatchObject({ error: 'invalid_grant' });
  });

  it('refuses a wrong client secret with 401 invalid_client', async () => {
    const res = await fetch(`${server.issuer}/token`, {
      method: 'POST',
      body: new URLSearchParams({ grant_type: 'client_credentials' }),
      headers: { authorization: `Basic ${Buffer.from(`${fixtures.confidential.clientId}:not-the-secret`).toString('base64')}` },
    });
    expect(res.status).toBe(401);
    expect((await res.json()).error).toBe('invalid_client');
  });

  it('answers malformed and unsupported requests with OAuth 4xx errors', async () => {
    const basic = `Basic ${Buffer.from(`${fixtures.confidential.clientId}:${fixtures.confidential.clientSecret}`).toString('base64')}`;
    const post = (body: string, type = 'application/x-www-form-urlencoded') =>
      fetch(`${server.issuer}/token`, { method: 'POST', body, headers: { authorization: basic, 'content-type': type } });

    const unsupported = await post('grant_type=urn:example:nothing');
    expect(unsupported.status).toBe(400);
    expect((await unsupported.json()).error).toBe('unsupported_grant_type');

    // The password grant exists for first-party clients only; an ordinary client is refused.
    const password = await post('grant_type=password&username=ada&password=x');
    expect(password.status).toBe(400);
    expect(await password.json()).toMatchObject({ error_description: 'requested grant type is not allowed for this client' });

    const wrongType = await post('{"grant_type":"client_credentials"}', 'application/json');
    expect(wrongType.status).toBe(400);
    expect((await wrongType.json()).error).toBe('invalid_request');

    const huge = await post(`grant_type=client_credentials&scope=${'x'.repeat(200_000)}`);
    expect(huge.status).toBeGreaterThanOrEqual(400);
    expect(huge.status).toBeLessThan(500);
  });
});

describe('the login page', () => {
  it('rejects a form without a CSRF token', async () => {
    const { agent, page } = await openLoginPage();
    const { action } = findForm(page.html, '/login');
    const res = await agent.request(new URL(action, page.url).toString(), form({ login: 'ada', password: PASSWORD }));
    expect(res.status).toBe(403);
    expect(await res.text()).toContain('Open the form again');
  });

  it('rejects a form posted from another origin', async () => {
    const { agent, page } = await openLoginPage();
    const { action, hidden } = findForm(page.html, '/login');
    const res = await agent.request(new URL(action, page.url).toString(), {
      ...form({ ...hidden, login: 'ada', password: PASSWORD }),
      headers: { 'content-type': 'application/x-www-form-urlencoded', origin: 'https://evil.example' },
    });
    expect(res.status).toBe(403);
  });

  it('answers 413 to an oversized form and 400 to missing fields', async () => {
    const { agent, page } = await openLoginPage();
    const { action, hidden } = findForm(page.html, '/login');
    const target = new URL(action, page.url).toString();
    const big = await agent.request(target, form({ ...hidden, login: 'ada', password: 'p'.repeat(40_000) }));
    expect(big.status).toBe(413);
    const missing = await agent.request(target, form({ ...hidden, login: 'ada' }));
    expect(missing.status).toBe(400);
    expect(await missing.text()).toContain('Enter your email or username and your password.');
    // Longer than any account's password: not correct, rather than missing.
    const tooLong = await agent.request(target, form({ ...hidden, login: 'ada', password: 'p'.repeat(1025) }));
    expect(tooLong.status).toBe(401);
    expect(await tooLong.text()).toContain('The email, username or password is not correct.');
  });

  it('answers 400, not 500, to a body that does not decode as its Content-Encoding says', async () => {
    const { agent, page } = await openLoginPage();
    const { action, hidden } = findForm(page.html, '/login');
    const body = new URLSearchParams({ ...hidden, login: 'ada', password: PASSWORD }).toString();
    const garbled = await agent.request(new URL(action, page.url).toString(), {
      method: 'POST',
      body,
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'content-encoding': 'gzip' },
    });
    expect(garbled.status).toBe(400);
    for (const encoding of ['gzip', 'deflate', 'br']) {
      const res = await fetch(`${server.url}/api/auth/login`, { method: 'POST', body: 'x', headers: { 'content-type': 'application/json', 'content-encoding': encoding } });
      expect(res.status).toBe(400);
      expect(await res.json()).toMatchObject({ code: 'VALIDATION_FAILED', detail: expect.stringContaining('Content-Encoding') });
    }
  });

  it('answers 415 to an API body that is neither JSON nor a form, and reads JSON of any +json type', async () => {
    const credentials = JSON.stringify({ username: 'ada', password: PASSWORD });
    const login = (headers: Record<string, string>, body = credentials) =>
      fetch(`${server.url}/api/auth/login`, { method: 'POST', body, headers });
    for (const type of ['text/plain', 'multipart/form-data; boundary=x', 'application/xml']) {
      const res = await login({ 'content-type': type });
      expect(res.status, type).toBe(415);
      expect(await res.json(), type).toMatchObject({ code: 'UNSUPPORTED_MEDIA_TYPE', detail: 'Send the body as application/json.' });
    }
    // A body with no Content-Type at all cannot be read either.
    const untyped = await fetch(`${server.url}/api/auth/login`, { method: 'POST', body: new Blob([credentials]) });
    expect(untyped.status).toBe(415);
    // What the API reads: JSON (also under a +json type) and forms.
    expect((await login({ 'content-type': 'application/json; charset=utf-8' })).status).toBe(200);
    expect((await login({ 'content-type': 'application/merge-patch+json' })).status).toBe(200);
    expect((await login({ 'content-type': 'application/x-www-form-urlencoded' }, new URLSearchParams({ username: 'ada', password: PASSWORD }).toString())).status).toBe(200);
    // A request without a body names no type and is read as an empty one.
    const empty = await fetch(`${server.url}/api/auth/login`, { method: 'POST', headers: { 'content-type': 'text/plain' } });
    expect(empty.status).toBe(400);
    expect(await empty.json()).toMatchObject({ code: 'VALIDATION_FAILED' });
  });

  it('gives the same answer for an unknown user, a wrong password and a disabled account', async () => {
    await server.users.create({ email: 'gone@example.com', password: PASSWORD });
    await server.prisma.user.update({ where: { emailNormalized: 'gone@example.com' }, data: { active: false } });

    const answers = [];
    for (const [login, password] of [['nobody@example.com', PASSWORD], ['ada', 'wrong password'], ['gone@example.com', PASSWORD]]) {
      const { agent, page } = await openLoginPage();
      const res = await agent.submit(page, '/login', { login: login!, password: password! });
      const message = /role="alert">([^<]*)</.exec(res.html)?.[1];
      answers.push({ status: res.status, message });
    }
    expect(answers[0]).toEqual({ status: 401, message: 'The email, username or password is not correct.' });
    expect(answers[1]).toEqual(answers[0]);
    expect(answers[2]).toEqual(answers[0]);
  });

  it('accepts the email in any letter case as well as the username', async () => {
    const rp = await relyingParty(server, fixtures.trusted);
    const flow = await signIn(rp, { login: 'ADA@example.COM' });
    expect((await flow.tokens()).claims()!.sub).toBe(fixtures.user.id);
  });

  it('shows a clear page for an unknown or expired interaction', async () => {
    const res = await fetch(`${server.url}/interaction/does-not-exist`);
    expect(res.status).toBe(400);
    expect(await res.text()).toContain('This sign-in request has expired');
  });
});

describe('accounts', () => {
  it('a disabled user loses access at once: userinfo fails and refresh is refused', async () => {
    const user = await server.users.create({ email: 'temp@example.com', password: PASSWORD });
    const rp = await relyingParty(server, fixtures.confidential);
    const tokens = await (await signIn(rp, { login: 'temp@example.com' })).tokens();
    await server.prisma.user.update({ where: { id: user.id }, data: { active: false } });
    await expect(oidc.fetchUserInfo(rp, tokens.access_token, user.id)).rejects.toBeTruthy();
    await expect(oidc.refreshTokenGrant(rp, tokens.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });
  });

  it('a browser session of a user disabled behind the API\'s back asks for a new sign-in, not a 500', async () => {
    const user = await server.users.create({ email: 'left@example.com', password: PASSWORD });
    const rp = await relyingParty(server, fixtures.confidential);
    const flow = await signIn(rp, { login: 'left@example.com' });
    // Straight in the database: no session revocation happens.
    await server.prisma.user.update({ where: { id: user.id }, data: { active: false } });
    const again = await flow.agent.navigate((await authorizationRequest(rp)).url);
    expect(again.status).toBe(200);
    expect(again.html).toContain('Email or username');
  });

  it('registered redirect URIs are matched exactly', async () => {
    const rp = await relyingParty(server, fixtures.confidential);
    const { url } = await authorizationRequest(rp, { redirect_uri: `${REDIRECT_URI}/extra` });
    expect((await fetch(url, { redirect: 'manual' })).status).toBe(400);
  });
});

describe('input no database can store', () => {
  const postJson = (path: string, body: string) => fetch(`${server.url}/api${path}`, { method: 'POST', body, headers: { 'content-type': 'application/json' } });
  // Random, so that PostgreSQL cannot compress it under its index entry limit (about 2.7 kB).
  const longRandom = () => randomBytes(2400).toString('base64url');

  it('answers deeply nested JSON and a lone surrogate with a 400 naming the problem', async () => {
    const deep = await postJson('/auth/login', `{"username":${'['.repeat(5000)}${']'.repeat(5000)},"password":"x"}`);
    expect(deep.status).toBe(400);
    expect((await deep.json()).detail).toBe('Nested deeper than 32 levels.');

    // JSON's escape makes half a character: no text, and Prisma's engine and PostgreSQL refuse it.
    const lone = await postJson('/auth/register', '{"email":"lone@example.com","password":"violet kettle orbit 42","name":"Ada \\ud800"}');
    expect(lone.status).toBe(400);
    expect(await lone.json()).toMatchObject({ detail: 'Text must be valid Unicode.', errors: [{ path: 'name' }] });
    // A whole character written as its two escapes is fine.
    const pair = await postJson('/auth/register', '{"email":"pair@example.com","password":"violet kettle orbit 42","name":"Ada \\ud83d\\ude00"}');
    expect(pair.status).toBe(201);
  });

  it('answers a password grant holding a NUL character with invalid_request, not a 500', async () => {
    // PostgreSQL cannot look up a login with a NUL in it; SQLite would just find no account.
    for (const [field, params] of [
      ['username', { username: 'ada\u0000', password: PASSWORD }],
      ['password', { username: 'ada', password: `${PASSWORD}\u0000` }],
    ] as const) {
      const res = await fetch(`${server.issuer}/token`, { ...form({ grant_type: 'password', client_id: 'latch-api', ...params }) });
      expect(res.status, field).toBe(400);
      expect(await res.json(), field).toMatchObject({ error: 'invalid_request', error_description: `NUL characters are not allowed in ${field}` });
    }
  });

  it('refuses an over-long email address, and counts an over-long login failure without a 500', async () => {
    const email = `${longRandom()}@example.com`;
    expect((await postJson('/auth/forgot-password', JSON.stringify({ email }))).status).toBe(400);
    expect((await postJson('/auth/magic-link', JSON.stringify({ email }))).status).toBe(400);
    // The password grant takes any login; the throttle counts it under a digest, as the mail
    // throttle counts an address.
    const login = longRandom();
    const res = await fetch(`${server.issuer}/token`, { ...form({ grant_type: 'password', client_id: 'latch-api', username: login, password: 'x' }) });
    expect(res.status).toBe(400);
    expect((await res.json()).error).toBe('invalid_grant');
    expect((await postJson('/auth/forgot-password', JSON.stringify({ email: 'counted@example.com' }))).status).toBeLessThan(300);
    const keys = (await server.prisma.rateLimiterFlexible.findMany({ select: { key: true } })).map((c) => c.key);
    expect(keys.filter((k) => k.startsWith('login-account:'))).toContainEqual(expect.stringMatching(/^login-account:[\w-]{43}$/));
    expect(keys.filter((k) => k.startsWith('mail-address:'))).toContainEqual(expect.stringMatching(/^mail-address:[\w-]+:[\w-]{43}$/));
    expect(keys.join(' ')).not.toMatch(/counted@example\.com|127\.0\.0\.1/);
    expect(keys.every((k) => !k.includes(login.slice(0, 40)))).toBe(true);
  });
});


describe('the password grant', () => {
  it("keeps to the scopes the client is registered with, as the authorization endpoint does", async () => {
    const client = await server.clients.create({ name: 'Kiosk', grantTypes: ['password', 'refresh_token'], scopes: ['openid'] });
    const authorization = `Basic ${Buffer.from(`${encodeURIComponent(client.clientId)}:${encodeURIComponent(client.clientSecret!)}`).toString('base64')}`;
    const grant = async (params: Record<string, string>) => {
      const request = form({ grant_type: 'password', username: 'ada', password: PASSWORD, ...params });
      const res = await fetch(`${server.issuer}/token`, { ...request, headers: { ...request.headers, authorization } });
      return { status: res.status, body: (await res.json()) as Record<string, string> };
    };
    const wide = await grant({ scope: 'openid email profile' });
    expect(wide.status).toBe(400);
    expect(wide.body).toMatchObject({ error: 'invalid_scope', error_description: 'requested scope is not allowed' });
    expect(wide.body.access_token).toBeUndefined();
    // Without a scope, the default (openid profile email) is narrowed to what the client may have.
    for (const params of [{ scope: 'openid' }, {}] as Record<string, string>[]) {
      const ok = await grant(params);
      expect(ok.status).toBe(200);
      expect(ok.body.scope).toBe('openid');
    }
  });
});
