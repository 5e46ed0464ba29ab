import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { createServer, type Socket } from 'node:net';
import { freePort, startServerWithMail, type TestServer } from '../support/server.js';
import type { SmtpSink } from '../support/smtp-sink.js';
import { OVERSIZED_BYTES, startFakeUpstream, type FakeUpstream } from '../support/fake-upstream.js';
import { REDIRECT_URI, authorizationRequest, relyingParty, seed } from '../support/oidc.js';
import { createUserAgent } from '../support/user-agent.js';
import { refuseChanges } from '../support/database.js';
import type { Connection } from '../../src/federation/connections.service.js';
import { createSecretBox } from '../../src/federation/secret-box.js';

// An `oidc` connection against an OpenID provider on loopback that can be told to misbehave:
// the ID token is checked (issuer, audience, nonce, signature) and every failure ends on a page.
let server: TestServer;
let smtp: SmtpSink;
let stop: () => Promise<void>;
let upstream: FakeUpstream;
let fixtures: Awaited<ReturnType<typeof seed>>;
let sso: Connection;

beforeAll(async () => {
  upstream = await startFakeUpstream();
  ({ server, smtp, stop } = await startServerWithMail({ CONNECTION_SECRET_KEYS: randomBytes(32).toString('base64'), UPSTREAM_TIMEOUT: '2', EMAIL_MAX_PER_ADDRESS: '10' }));
  fixtures = await seed(server);
  sso = await server.connections.create({ kind: 'oidc', slug: 'sso', name: 'Company SSO', issuer: upstream.oidc.issuer, clientId: upstream.clientId, clientSecret: upstream.clientSecret });
  await server.connections.offer(fixtures.confidential.clientId, sso.id);
});
afterAll(async () => {
  await stop?.();
  await upstream?.close();
});
beforeEach(() => {
  upstream.misbehave = {};
  upstream.oidcUser = { sub: 'emp-1', email: 'emp1@corp.example', email_verified: true, given_name: 'Emma', family_name: 'Ployee', name: 'Emma Ployee' };
});

async function pressButton(slug = 'sso', agent = createUserAgent()) {
  const rp = await relyingParty(server, fixtures.confidential);
  const request = await authorizationRequest(rp);
  const login = await agent.navigate(request.url);
  const back = await agent.submit(login, `/connection/${slug}`, {}, `${server.url}/callback/`);
  return { agent, rp, request, login, back };
}

async function lastFailure() {
  return (await server.audit.search({ event: 'federated.failure' })).items[0]?.detail as { reason: string; connection: string } | undefined;
}

describe('sign in with an oidc connection', () => {
  it('validates the ID token with a nonce and creates the user from its claims and userinfo', async () => {
    const { agent, back } = await pressButton();
    const sent = upstream.authorizeRequests.at(-1)!;
    expect(sent.get('scope')).toBe('openid email profile');
    expect(sent.get('nonce')).toBeTruthy();
    expect(sent.get('code_challenge_method')).toBe('S256');
    let page = await agent.navigate(back.url, {}, REDIRECT_URI);
    if (page.html.includes('/confirm"')) page = await agent.submit(page, '/confirm', {}, REDIRECT_URI);
    expect(page.url.startsWith(REDIRECT_URI)).toBe(true);
    const user = await server.users.findByLogin('emp1@corp.example');
    expect(user).toMatchObject({ givenName: 'Emma', familyName: 'Ployee', emailVerified: true });
    expect(await server.prisma.federatedIdentity.findFirst({ where: { connectionId: sso.id, subject: 'emp-1' } })).toMatchObject({ userId: user!.id });
  });

  for (const [misbehaviour, label] of [
    ['wrongNonce', 'a nonce that is not the one sent'],
    ['wrongIssuer', 'another issuer'],
    ['wrongAudience', 'another audience'],
  ] as const) {
    it(`refuses an ID token with ${label}: a clear page, an audit entry, no account`, async () => {
      upstream.misbehave = { [misbehaviour]: true };
      upstream.oidcUser = { sub: `bad-${misbehaviour}`, email: `${misbehaviour}@corp.example`, email_verified: true };
      const { agent, back } = await pressButton();
      const page = await agent.navigate(back.url);
      expect(page.status).toBe(400);
      expect(page.html).toContain('sent an identity token that is not valid for this sign-in');
      expect(page.html).toContain('Back to sign in');
      expect(await lastFailure()).toMatchObject({ connection: 'sso', reason: 'invalid_id_token' });
      expect(await server.users.findByLogin(`${misbehaviour}@corp.example`)).toBeNull();
    });
  }

  it('shows the login page again with a message when the provider cannot be reached', async () => {
    const port = await freePort();
    const down = await server.connections.create({ kind: 'oidc', slug: 'down', name: 'Down SSO', issuer: `http://127.0.0.1:${port}/oidc`, clientId: 'x' });
    await server.connections.offer(fixtures.confidential.clientId, down.id);
    const rp = await relyingParty(server, fixtures.confidential);
    const agent = createUserAgent();
    const login = await agent.navigate((await authorizationRequest(rp)).url);
    const page = await agent.submit(login, '/connection/down');
    expect(page.status).toBe(502);
    expect(page.html).toContain('Down SSO could not be reached.');
    expect(page.html).toContain('Email or username');
    expect(await lastFailure()).toMatchObject({ connection: 'down', reason: 'unreachable' });
    await server.connections.delete(down.id);
  });

  it('reports a refused code as refused, whatever members the refusal carries', async () => {
    // The upstream's error answer becomes the library error's cause: its members are not Latch's network errors.
    upstream.misbehave = { refuseToken: { code: 'ECONNRESET', name: 'AbortError' } };
    const { agent, back } = await pressButton();
    const page = await agent.navigate(back.url);
    expect(page.status).toBe(400);
    expect(page.html).toContain('refused to complete the sign-in');
    expect(await lastFailure()).toMatchObject({ connection: 'sso', reason: 'rejected' });
  });

  it('gives up on a provider that takes the connection but never answers, as unreachable', async () => {
    // Accepts, reads, never answers: only the timeout (UPSTREAM_TIMEOUT, 2 s here) ends the wait.
    const held: Socket[] = [];
    const silent = createServer((socket) => void held.push(socket.on('error', () => {})));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const { port } = silent.address() as { port: number };
    const mute = await server.connections.create({ kind: 'oidc', slug: 'mute', name: 'Mute SSO', issuer: `http://127.0.0.1:${port}/oidc`, clientId: 'x' });
    await server.connections.offer(fixtures.confidential.clientId, mute.id);
    try {
      const rp = await relyingParty(server, fixtures.confidential);
      const agent = createUserAgent();
      const login = await agent.navigate((await authorizationRequest(rp)).url);
      const started = Date.now();
      const page = await agent.submit(login, '/connection/mute');
      expect(page.status).toBe(502);
      expect(page.html).toContain('Mute SSO could not be reached.');
      expect(Date.now() - started).toBeLessThan(10_000);
      expect(await lastFailure()).toMatchObject({ connection: 'mute', reason: 'unreachable' });
    } finally {
      await server.connections.delete(mute.id);
      for (const socket of held) socket.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  });

  it('refuses the callback of an unknown connection and one with no state cookie, without a 500', async () => {
    const agent = createUserAgent();
    expect((await agent.navigate(`${server.url}/callback/nope?code=x&state=y`)).status).toBe(400);
    const page = await agent.navigate(`${server.url}/callback/sso?code=x&state=y`);
    expect(page.status).toBe(400);
    expect(page.html).toContain('was not started in this browser');
    expect((await agent.navigate(`${server.url}/callback/sso?error=access_denied`)).status).toBe(400);
  });

  it('never calls a plain-http host off this machine that a loopback issuer\'s discovery names', async () => {
    // A connection made after the change, so its discovery is read afresh.
    const named = await server.connections.create({ kind: 'oidc', slug: 'named', name: 'Named SSO', issuer: upstream.oidc.issuer, clientId: upstream.clientId, clientSecret: upstream.clientSecret });
    await server.connections.offer(fixtures.confidential.clientId, named.id);
    for (const endpoint of ['token_endpoint', 'jwks_uri', 'userinfo_endpoint', 'authorization_endpoint'] as const) {
      upstream.misbehave = { discoveryEndpoints: { [endpoint]: 'http://192.0.2.10/internal' } };
      await server.connections.update(named.id, { name: `Named SSO ${endpoint}` });
      const asked = upstream.authorizeRequests.length;
      const rp = await relyingParty(server, fixtures.confidential);
      const agent = createUserAgent();
      const page = await agent.submit(await agent.navigate((await authorizationRequest(rp)).url), '/connection/named');
      expect(page.status, endpoint).toBe(400);
      expect(page.html).toContain('discovery document names an endpoint that is neither https nor on this host');
      expect(upstream.authorizeRequests.length).toBe(asked);
      expect(await lastFailure()).toMatchObject({ connection: 'named', reason: 'invalid_response' });
    }
    await server.connections.delete(named.id);
  });

  it('treats an address a local account could not hold (jane@intranet) as no address', async () => {
    upstream.oidcUser = { sub: 'intranet-1', email: 'jane.doe@intranet', email_verified: true };
    const { agent, back } = await pressButton();
    const page = await agent.navigate(back.url);
    expect(page.status).toBe(400);
    expect(page.html).toContain('did not share an email address');
    expect(await lastFailure()).toMatchObject({ connection: 'sso' });
    expect(await server.prisma.federatedIdentity.count({ where: { subject: 'intranet-1' } })).toBe(0);
  });

  it('asks a user without an email at the provider to sign in another way', async () => {
    upstream.oidcUser = { sub: 'no-email' };
    const { agent, back } = await pressButton();
    const page = await agent.navigate(back.url);
    expect(page.status).toBe(400);
    expect(page.html).toContain('did not share an email address');
    expect(await server.prisma.federatedIdentity.count({ where: { subject: 'no-email' } })).toBe(0);
  });

  it('refuses claims no database could store (a NUL, a lone surrogate) with a clear page, not a 500', async () => {
    for (const [sub, extra] of [['emp-\u0000', {}], ['emp-lone', { given_name: 'Em\ud800ma' }]] as const) {
      upstream.oidcUser = { sub, email: 'odd@corp.example', email_verified: true, ...extra };
      const { agent, back } = await pressButton();
      const page = await agent.navigate(back.url);
      expect(page.status, sub).toBe(400);
      expect(page.html).toContain('Back to sign in');
      expect(await lastFailure()).toMatchObject({ connection: 'sso', reason: 'invalid_response' });
      expect(await server.users.findByLogin('odd@corp.example')).toBeNull();
    }
  });

  it('creates no account for an address the provider has not verified', async () => {
    upstream.oidcUser = { sub: 'emp-unverified', email: 'victim@corp.example', email_verified: false };
    const { agent, back } = await pressButton();
    const page = await agent.navigate(back.url);
    expect(page.status).toBe(400);
    expect(page.html).toContain('did not say that your email address is confirmed');
    expect(await lastFailure()).toMatchObject({ connection: 'sso', reason: 'unverified_email' });
    expect(await server.users.findByLogin('victim@corp.example')).toBeNull();
  });

  it('refuses an unconfirmed user who signs in through the provider while confirmation is required', async () => {
    upstream.oidcUser = { sub: 'emp-3', email: 'emp3@corp.example', email_verified: true };
    const first = await pressButton();
    await first.agent.navigate(first.back.url, {}, REDIRECT_URI);
    const user = await server.users.findByLogin('emp3@corp.example');
    await server.prisma.user.update({ where: { id: user!.id }, data: { emailVerified: false } });
    await server.settings.update({ allowUnverifiedLogin: false });
    try {
      const again = await pressButton();
      const page = await again.agent.navigate(again.back.url);
      expect(page.status).toBe(403);
      expect(page.html).toContain('Confirm your email address first');
    } finally {
      await server.settings.update({ allowUnverifiedLogin: true });
    }
  });

  it('refuses a disabled user who signs in through the provider', async () => {
    upstream.oidcUser = { sub: 'emp-2', email: 'emp2@corp.example', email_verified: true };
    const first = await pressButton();
    await first.agent.navigate(first.back.url, {}, REDIRECT_URI);
    const user = await server.users.findByLogin('emp2@corp.example');
    await server.prisma.user.update({ where: { id: user!.id }, data: { active: false } });
    const again = await pressButton();
    const page = await again.agent.navigate(again.back.url);
    expect(page.status).toBe(403);
    expect(page.html).toContain('This account is disabled.');
  });
});

describe('a connection whose client secret this server has no key for', () => {
  it('ends on a page saying sign-in is unavailable (503), blames no upstream, and names the cause in the audit log', async () => {
    const slug = 'lost-key';
    const c = await server.connections.create({ kind: 'oidc', slug, name: 'Lost SSO', issuer: upstream.oidc.issuer, clientId: upstream.clientId, clientSecret: upstream.clientSecret });
    await server.connections.offer(fixtures.confidential.clientId, c.id);
    // Sealed under a key that was dropped from CONNECTION_SECRET_KEYS.
    const orphan = await createSecretBox([randomBytes(32).toString('base64')]).seal(upstream.clientSecret);
    await server.prisma.connection.update({ where: { id: c.id }, data: { clientSecret: orphan } });

    const { back } = await pressButton(slug);
    expect(back.status).toBe(503);
    expect(back.html).toContain('Sign-in with Lost SSO is not available right now.');
    expect(await lastFailure()).toMatchObject({ connection: slug, reason: 'secret_unreadable' });
    await server.connections.delete(c.id);
  });
});

describe('an upstream that answers too much', () => {
  // Each on a connection of its own, so that its discovery and keys are fetched afresh.
  it.each([
    ['discovery', false],
    ['jwks', false],
    ['token', false],
    ['userinfo', false],
    ['userinfo', true],
  ] as const)('stops reading an oversized %s answer (Content-Length given: %s) and ends on a clear page, with no account', async (endpoint, declareLength) => {
    const slug = `big-${endpoint}${declareLength ? '-declared' : ''}`;
    const big = await server.connections.create({ kind: 'oidc', slug, name: 'Big SSO', issuer: upstream.oidc.issuer, clientId: upstream.clientId, clientSecret: upstream.clientSecret });
    await server.connections.offer(fixtures.confidential.clientId, big.id);
    upstream.oidcUser = { sub: slug, email: `${slug}@corp.example`, email_verified: true };
    upstream.misbehave = { oversized: { endpoint, declareLength } };
    const before = upstream.oversizedAnswers.length;

    const { agent, back } = await pressButton(slug);
    // Discovery runs when the button is pressed: the login page says so. The rest, at the callback.
    const page = endpoint === 'discovery' ? back : await agent.navigate(back.url);
    expect(page.status).toBe(502);
    expect(page.html).toContain('Big SSO sent an answer larger than we accept (1 MiB).');
    expect(page.html).toContain(endpoint === 'discovery' ? 'Email or username' : 'Back to sign in');
    expect(await lastFailure()).toMatchObject({ connection: slug, reason: 'response_too_large' });
    expect(await server.users.findByLogin(`${slug}@corp.example`)).toBeNull();
    // Latch hung up instead of reading on: the upstream never wrote its whole answer.
    const answers = upstream.oversizedAnswers.slice(before);
    expect(answers).toEqual([expect.objectContaining({ endpoint, complete: false })]);
    expect(answers[0]!.bytesWritten).toBeLessThan(OVERSIZED_BYTES);
    await server.connections.delete(big.id);
  });
});

describe("an app's own connection", () => {
  it('makes accounts whose address stays unconfirmed, and sessions that serve that app only', async () => {
    const app = await server.clients.create({ name: 'Own SSO app', redirectUris: [REDIRECT_URI] });
    const own = await server.connections.create({ kind: 'oidc', slug: 'own-sso', name: 'App SSO', issuer: upstream.oidc.issuer, clientId: upstream.clientId, clientSecret: upstream.clientSecret }, app.clientId);
    upstream.oidcUser = { sub: 'own-1', email: 'newhire@corp.example', email_verified: true };
    const rp = await relyingParty(server, app);
    const agent = createUserAgent();
    const login = await agent.navigate((await authorizationRequest(rp)).url);
    const back = await agent.submit(login, `/connection/${own.slug}`, {}, `${server.url}/callback/`);
    let page = await agent.navigate(back.url, {}, REDIRECT_URI);
    if (page.html.includes('/confirm"')) page = await agent.submit(page, '/confirm', {}, REDIRECT_URI);
    expect(page.url.startsWith(REDIRECT_URI)).toBe(true);
    // The app's upstream vouched for the address; Latch does not take its word for it.
    expect(await server.users.findByLogin('newhire@corp.example')).toMatchObject({ emailVerified: false });

    // Another app (and the account pages) ask this browser to sign in again.
    const other = await relyingParty(server, fixtures.confidential);
    const elsewhere = await agent.navigate((await authorizationRequest(other)).url, {}, REDIRECT_URI);
    expect(elsewhere.url).toMatch(/\/interaction\/[^/]+$/);
    expect(elsewhere.html).toContain('name="password"');
    const account = await agent.navigate(`${server.url}/account`);
    expect(account.url).toMatch(/\/interaction\/[^/]+$/);
    // The app itself still signs in at once.
    const again = await agent.navigate((await authorizationRequest(rp)).url, {}, REDIRECT_URI);
    expect(again.url.startsWith(REDIRECT_URI)).toBe(true);

    // The address's owner proves it with an emailed link: the app's upstream no longer reaches
    // the account, and the session it made ends.
    const user = (await server.users.findByLogin('newhire@corp.example'))!;
    await server.accounts.requestMagicLink('newhire@corp.example', {});
    const token = new URL((await smtp.waitFor('newhire@corp.example', (m) => m.subject.includes('sign-in link'))).link!).searchParams.get('token')!;
    await server.accounts.useMagicLink(token, {});
    expect(await server.prisma.federatedIdentity.count({ where: { userId: user.id, connectionId: own.id } })).toBe(0);
    const ended = await agent.navigate((await authorizationRequest(rp)).url, {}, REDIRECT_URI);
    expect(ended.url).toMatch(/\/interaction\/[^/]+$/);
  });
});

describe('linking with an emailed link instead of the password', () => {
  it('links when the local account opens the link in this browser, and signs in', async () => {
    upstream.oidcUser = { sub: 'ada-sso', email: 'ada@example.com', email_verified: true, name: 'Ada at Corp' };
    const { agent, back } = await pressButton();
    const link = await agent.navigate(back.url);
    expect(link.url).toBe(`${server.url}/link-account`);
    const sent = await agent.submit(link, '/link-account/email');
    expect(sent.html).toContain('We sent a link to ada@example.com');
    const mail = await smtp.waitFor('ada@example.com');
    const confirm = await agent.navigate(mail.link!);
    let page = await agent.submit(confirm, '/magic-link', {}, REDIRECT_URI);
    if (page.html.includes('/confirm"')) page = await agent.submit(page, '/confirm', {}, REDIRECT_URI);
    expect(page.url.startsWith(REDIRECT_URI)).toBe(true);
    expect(await server.prisma.federatedIdentity.findFirst({ where: { connectionId: sso.id, subject: 'ada-sso' } })).toMatchObject({ userId: fixtures.user.id });
    expect((await server.audit.search({ event: 'federated.linked' })).items[0]).toMatchObject({ userId: fixtures.user.id });
    // The local profile is not overwritten by the upstream's claims.
    expect((await server.users.findById(fixtures.user.id))!.name).toBe('Ada Lovelace');
  });

  it('when the link cannot be stored, answers 500 and keeps it pending: the same emailed link then links and signs in', async () => {
    upstream.oidcUser = { sub: 'ada-sso-3', email: 'ada@example.com', email_verified: true };
    const { agent, back } = await pressButton();
    await agent.submit(await agent.navigate(back.url), '/link-account/email');
    const confirm = await agent.navigate((await smtp.waitFor('ada@example.com')).link!);
    const allow = await refuseChanges(server, 'INSERT', 'federated_identities');
    let failed;
    try {
      failed = await agent.submit(confirm, '/magic-link', {}, REDIRECT_URI);
    } finally {
      await allow();
    }
    expect(failed.status).toBe(500);
    let page = await agent.submit(confirm, '/magic-link', {}, REDIRECT_URI);
    if (page.html.includes('/confirm"')) page = await agent.submit(page, '/confirm', {}, REDIRECT_URI);
    expect(page.url.startsWith(REDIRECT_URI)).toBe(true);
    expect(await server.prisma.federatedIdentity.findFirst({ where: { connectionId: sso.id, subject: 'ada-sso-3' } })).toMatchObject({ userId: fixtures.user.id });
  });

  it('ends the pending link when it is refused for good (the upstream account was linked to someone else meanwhile)', async () => {
    upstream.oidcUser = { sub: 'ada-sso-4', email: 'ada@example.com', email_verified: true };
    const { agent, back } = await pressButton();
    await agent.submit(await agent.navigate(back.url), '/link-account/email');
    const confirm = await agent.navigate((await smtp.waitFor('ada@example.com')).link!);
    const other = await server.users.create({ email: 'grace@example.com', password: 'correct horse battery staple', emailVerified: true });
    await server.prisma.federatedIdentity.create({ data: { userId: other.id, connectionId: sso.id, subject: 'ada-sso-4' } });
    const refused = await agent.submit(confirm, '/magic-link', {}, REDIRECT_URI);
    expect(refused.status).toBe(403);
    expect(refused.html).toContain('already linked to another user');
    // Not left pending, to refuse every emailed sign-in of this browser for its quarter of an hour.
    expect(await agent.jar.getCookieString(server.url)).not.toContain('latch.link');
  });

  it('does not link when the emailed link is opened in a browser without the pending link', async () => {
    upstream.oidcUser = { sub: 'ada-sso-2', email: 'ada@example.com', email_verified: true };
    const { agent, back } = await pressButton();
    const link = await agent.navigate(back.url);
    await agent.submit(link, '/link-account/email');
    const mail = await smtp.waitFor('ada@example.com');
    const elsewhere = createUserAgent();
    const confirm = await elsewhere.navigate(mail.link!);
    await elsewhere.submit(confirm, '/magic-link');
    expect(await server.prisma.federatedIdentity.count({ where: { subject: 'ada-sso-2' } })).toBe(0);
  });
});
