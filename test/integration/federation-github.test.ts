import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { startTestServer, type TestServer } from '../support/server.js';
import { OVERSIZED_BYTES, startFakeUpstream, type FakeUpstream } from '../support/fake-upstream.js';
import { REDIRECT_URI, authorizationRequest, relyingParty, seed, PASSWORD } from '../support/oidc.js';
import { createUserAgent, type Page } from '../support/user-agent.js';
import type { Connection } from '../../src/federation/connections.service.js';

// "Continue with GitHub" against a GitHub-style OAuth 2 server on loopback (authorize, token,
// /user, /user/emails), through Latch's login page, over plain HTTP with a cookie jar.
let server: TestServer;
let upstream: FakeUpstream;
let fixtures: Awaited<ReturnType<typeof seed>>;
let github: Connection;

beforeAll(async () => {
  upstream = await startFakeUpstream();
  server = await startTestServer({ CONNECTION_SECRET_KEYS: randomBytes(32).toString('base64') });
  fixtures = await seed(server);
  github = await server.connections.create({
    kind: 'github',
    slug: 'github',
    name: 'GitHub',
    clientId: upstream.clientId,
    clientSecret: upstream.clientSecret,
    ...upstream.github,
  }, undefined);
  await server.connections.offer(fixtures.confidential.clientId, github.id);
});
afterAll(async () => {
  await server?.stop();
  await upstream?.close();
});
beforeEach(() => {
  upstream.misbehave = {};
  upstream.githubUser = {
    id: 4242,
    login: 'hopper',
    name: 'Grace Hopper',
    email: 'grace@example.com',
    avatarUrl: 'https://avatars.example.test/4242',
    emails: [{ email: 'grace@example.com', primary: true, verified: true }],
  };
});

/** Opens the app's sign-in and presses "Continue with GitHub"; stops where the upstream sends the browser back. */
async function continueWithGitHub(agent = createUserAgent(), clientId = fixtures.confidential.clientId, secret = fixtures.confidential.clientSecret) {
  const rp = await relyingParty(server, { clientId, clientSecret: secret });
  const request = await authorizationRequest(rp);
  const login = await agent.navigate(request.url);
  expect(login.html).toContain('Continue with GitHub');
  const back = await agent.submit(login, '/connection/github', {}, `${server.url}/callback/`);
  expect(back.url).toMatch(new RegExp(`^${server.url}/callback/github\\?`));
  return { agent, rp, request, login, callbackUrl: back.url };
}

async function finish(agent: ReturnType<typeof createUserAgent>, callbackUrl: string): Promise<Page> {
  let page = await agent.navigate(callbackUrl, {}, REDIRECT_URI);
  if (page.html.includes('/confirm"')) page = await agent.submit(page, '/confirm', {}, REDIRECT_URI);
  return page;
}

describe('sign in with a github connection', () => {
  it('sends PKCE and state upstream and, on the first sign-in, creates the user from GitHub', async () => {
    const { agent, rp, request, callbackUrl } = await continueWithGitHub();
    const sent = upstream.authorizeRequests.at(-1)!;
    expect(sent.get('redirect_uri')).toBe(`${server.url}/callback/github`);
    expect(sent.get('code_challenge_method')).toBe('S256');
    expect(sent.get('state')).toBeTruthy();
    expect(sent.get('scope')).toBe('read:user user:email');

    const done = await finish(agent, callbackUrl);
    expect(done.url.startsWith(REDIRECT_URI)).toBe(true);
    const { authorizationCodeGrant, fetchUserInfo } = await import('openid-client');
    const tokens = await authorizationCodeGrant(rp, new URL(done.url), { pkceCodeVerifier: request.verifier, expectedState: request.state, expectedNonce: request.nonce, idTokenExpected: true });
    const user = await server.users.findByLogin('grace@example.com');
    expect(user).toMatchObject({ name: 'Grace Hopper', emailVerified: true, picture: 'https://avatars.example.test/4242', passwordHash: null });
    expect(tokens.claims()!.sub).toBe(user!.id);
    expect(await fetchUserInfo(rp, tokens.access_token, user!.id)).toMatchObject({ email: 'grace@example.com', picture: 'https://avatars.example.test/4242' });
    expect(await server.prisma.federatedIdentity.findMany({ where: { userId: user!.id } })).toMatchObject([{ connectionId: github.id, subject: '4242' }]);
    // The token exchange proved the PKCE verifier.
    expect(upstream.tokenRequests.at(-1)!.get('code_verifier')).toBeTruthy();
  });

  it('finds the user again by GitHub id, not by email, on later sign-ins', async () => {
    upstream.githubUser = { ...upstream.githubUser, email: 'grace@new.example', emails: [{ email: 'grace@new.example', primary: true, verified: true }] };
    const { agent, callbackUrl } = await continueWithGitHub();
    const done = await finish(agent, callbackUrl);
    expect(done.url.startsWith(REDIRECT_URI)).toBe(true);
    expect(await server.users.findByLogin('grace@new.example')).toBeNull();
    const identity = await server.prisma.federatedIdentity.findFirst({ where: { connectionId: github.id, subject: '4242' } });
    expect((await server.users.findById(identity!.userId))!.email).toBe('grace@example.com');
  });

  // A plain OAuth 2 server's issuer is not configured, so an RFC 9207 `iss` cannot be checked; it
  // used to be compared with one made up from the authorization URL and fail every sign-in.
  it('signs in, and records a refusal as declined, with a server that sends an iss on its callback', async () => {
    upstream.githubUser = { id: 4343, login: 'iss-sender', name: 'Iss Sender', email: 'iss@example.com', emails: [{ email: 'iss@example.com', primary: true, verified: true }] };
    upstream.misbehave = { sendIss: `${upstream.url}/realms/corp` };
    const signedIn = await continueWithGitHub();
    expect(new URL(signedIn.callbackUrl).searchParams.get('iss')).toBe(`${upstream.url}/realms/corp`);
    expect((await finish(signedIn.agent, signedIn.callbackUrl)).url.startsWith(REDIRECT_URI)).toBe(true);
    expect(await server.users.findByLogin('iss@example.com')).toMatchObject({ name: 'Iss Sender' });

    upstream.misbehave = { sendIss: `${upstream.url}/realms/corp`, deny: true };
    const declined = await continueWithGitHub();
    expect((await declined.agent.navigate(declined.callbackUrl)).html).toContain('You declined to sign in with GitHub.');
    expect((await server.audit.search({ event: 'federated.failure' })).items[0]!.detail).toMatchObject({ reason: 'denied' });
  });

  it('ends on a clear page when the user declines at GitHub, and writes it to the audit log', async () => {
    upstream.misbehave = { deny: true };
    const { agent, callbackUrl } = await continueWithGitHub();
    const page = await agent.navigate(callbackUrl);
    expect(page.status).toBe(400);
    expect(page.html).toContain('You declined to sign in with GitHub.');
    expect(page.html).toContain('Back to sign in');
    const events = await server.audit.search({ event: 'federated.failure' });
    expect(events.items[0]!.detail).toMatchObject({ connection: 'github', reason: 'denied' });
  });

  it.each(['token', 'github-user', 'github-emails'] as const)('stops reading an oversized %s answer and ends on a clear page, with no account', async (endpoint) => {
    const email = `big-${endpoint}@example.com`;
    upstream.githubUser = { id: 77000 + endpoint.length, login: `big-${endpoint}`, name: 'Big', email, emails: [{ email, primary: true, verified: true }] };
    upstream.misbehave = { oversized: { endpoint } };
    const before = upstream.oversizedAnswers.length;
    const { agent, callbackUrl } = await continueWithGitHub();
    const page = await agent.navigate(callbackUrl);
    expect(page.status).toBe(502);
    expect(page.html).toContain('GitHub sent an answer larger than we accept (1 MiB).');
    expect(page.html).toContain('Back to sign in');
    const events = await server.audit.search({ event: 'federated.failure' });
    expect(events.items[0]!.detail).toMatchObject({ connection: 'github', reason: 'response_too_large' });
    expect(await server.users.findByLogin(email)).toBeNull();
    // Latch hung up instead of reading on: GitHub never wrote its whole answer.
    const answers = upstream.oversizedAnswers.slice(before);
    expect(answers).toEqual([expect.objectContaining({ endpoint, complete: false })]);
    expect(answers[0]!.bytesWritten).toBeLessThan(OVERSIZED_BYTES);
  });

  it('refuses a tampered state without ending the sign-in it was sent to, a replay, and a callback not started in this browser', async () => {
    upstream.githubUser = { id: 5151, login: 'tabs', name: 'Tab User', email: 'tabs@example.com', emails: [{ email: 'tabs@example.com', primary: true, verified: true }] };
    const { agent, callbackUrl } = await continueWithGitHub();
    for (const state of ['forged', 'x'.repeat(43), '../../etc']) {
      const tampered = new URL(callbackUrl);
      tampered.searchParams.set('state', state);
      const page = await agent.navigate(tampered.toString());
      expect(page.status, state).toBe(400);
      expect(page.html, state).toContain('was not started in this browser');
    }
    // The genuine answer still completes its sign-in; its state cookie is single use.
    expect((await finish(agent, callbackUrl)).url.startsWith(REDIRECT_URI)).toBe(true);
    const replay = await agent.navigate(callbackUrl);
    expect(replay.status).toBe(400);

    const { callbackUrl: other } = await continueWithGitHub();
    const stranger = await createUserAgent().navigate(other);
    expect(stranger.status).toBe(400);
    expect(stranger.html).toContain('was not started in this browser');
    expect(await server.users.count()).toBeGreaterThan(0);
  });

  it('completes two sign-ins started in one browser (two tabs), each back to its own app', async () => {
    upstream.githubUser = { id: 5252, login: 'two-tabs', name: 'Two Tabs', email: 'two-tabs@example.com', emails: [{ email: 'two-tabs@example.com', primary: true, verified: true }] };
    await server.connections.offer(fixtures.trusted.clientId, github.id);
    const agent = createUserAgent();
    const first = await continueWithGitHub(agent);
    const second = await continueWithGitHub(agent, fixtures.trusted.clientId, fixtures.trusted.clientSecret);
    for (const tab of [first, second]) {
      const done = await finish(agent, tab.callbackUrl);
      expect(done.url.startsWith(REDIRECT_URI)).toBe(true);
      expect(new URL(done.url).searchParams.get('state')).toBe(tab.request.state);
    }
  });

  it('keeps the last three sign-ins a browser started and left, so its cookies stay small', async () => {
    upstream.githubUser = { id: 5353, login: 'many', name: 'Many Tabs', email: 'many@example.com', emails: [{ email: 'many@example.com', primary: true, verified: true }] };
    const agent = createUserAgent();
    const started: string[] = [];
    for (let i = 0; i < 8; i += 1) started.push((await continueWithGitHub(agent)).callbackUrl);
    expect((await agent.jar.getCookieString(`${server.url}/callback/github`)).length).toBeLessThan(3000);
    // The oldest are forgotten; the latest still complete.
    expect((await agent.navigate(started[0]!)).html).toContain('was not started in this browser');
    expect((await finish(agent, started[7]!)).url.startsWith(REDIRECT_URI)).toBe(true);
    expect((await finish(agent, started[6]!)).url.startsWith(REDIRECT_URI)).toBe(true);
  });

  it("does not offer an app's connection on another app's login page, nor start it there", async () => {
    const own = await server.connections.create({ kind: 'github', slug: 'notes-github', name: 'Notes GitHub', clientId: upstream.clientId, clientSecret: upstream.clientSecret, ...upstream.github }, fixtures.confidential.clientId);
    const rp = await relyingParty(server, fixtures.spa);
    const agent = createUserAgent();
    const login = await agent.navigate((await authorizationRequest(rp)).url);
    expect(login.html).toContain('action="/interaction/');
    expect(login.html).not.toContain('Continue with');
    // Forging the button for another app's connection is refused too.
    const forged = login.html.replace(/action="(\/interaction\/[^/"]+)\/login"/, 'action="$1/connection/notes-github"');
    const page = await agent.submit({ ...login, html: forged }, '/connection/notes-github');
    expect(page.status).toBe(404);
    expect(page.html).toContain('This sign-in option is not available for this app.');
    await server.connections.delete(own.id);
  });
});

describe('linking a GitHub account to an existing local account', () => {
  it('ends a waiting link when the connection is turned off meanwhile', async () => {
    upstream.githubUser = { id: 78, login: 'ada-off', name: 'Ada', emails: [{ email: 'ada@example.com', primary: true, verified: true }] };
    const { agent, callbackUrl } = await continueWithGitHub();
    const link = await agent.navigate(callbackUrl);
    expect(link.url).toBe(`${server.url}/link-account`);
    await server.connections.update(github.id, { enabled: false });
    try {
      const refused = await agent.submit(link, '/link-account', { password: PASSWORD });
      expect(refused.status).toBe(400);
      expect(refused.html).toContain('Nothing to link');
      expect(await server.prisma.federatedIdentity.count({ where: { subject: '78' } })).toBe(0);
    } finally {
      await server.connections.update(github.id, { enabled: true });
    }
  });

  it('asks for the local password when GitHub verified the address, then links and signs in', async () => {
    upstream.githubUser = { id: 77, login: 'ada-gh', name: 'Ada', emails: [{ email: 'ada@example.com', primary: true, verified: true }] };
    const { agent, callbackUrl } = await continueWithGitHub();
    const link = await agent.navigate(callbackUrl);
    expect(link.url).toBe(`${server.url}/link-account`);
    expect(link.html).toContain('Link your GitHub account');
    expect(await server.prisma.federatedIdentity.count({ where: { subject: '77' } })).toBe(0);

    const wrong = await agent.submit(link, '/link-account', { password: 'not the password' });
    expect(wrong.status).toBe(401);
    expect(await server.prisma.federatedIdentity.count({ where: { subject: '77' } })).toBe(0);

    let page = await agent.submit(wrong, '/link-account', { password: PASSWORD }, REDIRECT_URI);
    if (page.html.includes('/confirm"')) page = await agent.submit(page, '/confirm', {}, REDIRECT_URI);
    expect(page.url.startsWith(REDIRECT_URI)).toBe(true);
    expect(await server.prisma.federatedIdentity.findFirst({ where: { subject: '77' } })).toMatchObject({ userId: fixtures.user.id });

    // From now on GitHub alone signs Ada in.
    const again = await continueWithGitHub();
    const done = await finish(again.agent, again.callbackUrl);
    expect(done.url.startsWith(REDIRECT_URI)).toBe(true);
  });

  it('never links when GitHub has not verified the address: the user is asked to sign in instead', async () => {
    const other = await server.users.create({ email: 'linus@example.com', password: PASSWORD, emailVerified: true });
    upstream.githubUser = { id: 78, login: 'mallory', email: 'linus@example.com', emails: [{ email: 'linus@example.com', primary: true, verified: false }] };
    const { agent, callbackUrl } = await continueWithGitHub();
    const page = await agent.navigate(callbackUrl);
    expect(page.url).toBe(`${server.url}/link-account`);
    expect(page.html).toContain('has not verified');
    expect(page.html).not.toContain('name="password"');
    // Even a correct password posted anyway does not link.
    const forced = await agent.request(`${server.url}/link-account`, {
      method: 'POST',
      body: new URLSearchParams({ _csrf: /name="_csrf" value="([^"]+)"/.exec(page.html)![1]!, password: PASSWORD }),
      headers: { 'content-type': 'application/x-www-form-urlencoded', origin: server.url },
    });
    expect(forced.status).toBeLessThan(500);
    expect(await server.prisma.federatedIdentity.count({ where: { subject: '78' } })).toBe(0);
    expect((await server.users.findById(other.id))!.lastLoginAt).toBeNull();
  });
});
