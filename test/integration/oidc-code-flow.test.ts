import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as oidc from 'openid-client';
import { createRemoteJWKSet, jwtVerify, decodeProtectedHeader } from 'jose';
import { startTestServer, type TestServer } from '../support/server.js';
import { PASSWORD, POST_LOGOUT_URI, REDIRECT_URI, authorizationRequest, relyingParty, seed, signIn } from '../support/oidc.js';
import { createUserAgent } from '../support/user-agent.js';

let server: TestServer;
let fixtures: Awaited<ReturnType<typeof seed>>;

beforeAll(async () => {
  server = await startTestServer();
  fixtures = await seed(server);
  await server.resources.create({ indicator: 'https://api.example.test', name: 'Example API', scopes: ['notes:read', 'notes:write'] });
});
afterAll(() => server?.stop());

describe('authorization code flow with PKCE', () => {
  it('signs a user in and issues an RS256 ID token with the profile and email claims', async () => {
    const rp = await relyingParty(server, fixtures.confidential);
    const flow = await signIn(rp);
    expect(flow.sawConsent).toBe(true);
    const tokens = await flow.tokens();
    const claims = tokens.claims()!;
    expect(claims.iss).toBe(server.issuer);
    expect(claims.aud).toBe(fixtures.confidential.clientId);
    expect(claims.sub).toBe(fixtures.user.id);
    expect(decodeProtectedHeader(tokens.id_token!).alg).toBe('RS256');
    await jwtVerify(tokens.id_token!, createRemoteJWKSet(new URL(`${server.issuer}/jwks`)), { issuer: server.issuer });
    expect(tokens.refresh_token).toBeTruthy();

    const userinfo = await oidc.fetchUserInfo(rp, tokens.access_token, fixtures.user.id);
    expect(userinfo).toMatchObject({
      sub: fixtures.user.id,
      email: 'Ada@Example.com',
      email_verified: true,
      given_name: 'Ada',
      family_name: 'Lovelace',
      name: 'Ada Lovelace',
      preferred_username: 'ada',
    });
  });

  it('remembers consent: a second sign-in in the same browser goes straight back to the app', async () => {
    const rp = await relyingParty(server, fixtures.confidential);
    const first = await signIn(rp);
    const second = await signIn(rp, { agent: first.agent });
    expect(second.sawConsent).toBe(false);
    expect((await second.tokens()).claims()!.sub).toBe(fixtures.user.id);
  });

  it('works for a public client with PKCE and no secret', async () => {
    const rp = await relyingParty(server, fixtures.spa);
    const tokens = await (await signIn(rp)).tokens();
    expect(tokens.claims()!.aud).toBe(fixtures.spa.clientId);
  });

  it('skips the consent page for a trusted first-party client', async () => {
    const rp = await relyingParty(server, fixtures.trusted);
    const flow = await signIn(rp);
    expect(flow.sawConsent).toBe(false);
    const tokens = await flow.tokens();
    expect((await oidc.fetchUserInfo(rp, tokens.access_token, fixtures.user.id)).email).toBe('Ada@Example.com');
  });

  it('returns access_denied to the client when the user clicks Deny', async () => {
    const rp = await relyingParty(server, fixtures.confidential);
    const agent = createUserAgent();
    const auth = await authorizationRequest(rp);
    let page = await agent.navigate(auth.url);
    page = await agent.submit(page, '/login', { login: 'ada@example.com', password: PASSWORD });
    expect(page.html).toContain('Allow');
    const denied = await agent.submit(page, '/abort', {}, REDIRECT_URI);
    const callback = new URL(denied.url);
    expect(callback.searchParams.get('error')).toBe('access_denied');
    expect(callback.searchParams.get('state')).toBe(auth.state);
  });

  it('issues a JWT access token (RFC 9068, ES256) for a registered API resource', async () => {
    const rp = await relyingParty(server, fixtures.confidential);
    const flow = await signIn(rp, { params: { resource: 'https://api.example.test', scope: 'openid notes:read' } });
    const tokens = await flow.tokens();
    expect(decodeProtectedHeader(tokens.access_token)).toMatchObject({ alg: 'ES256', typ: 'at+jwt' });
    const { payload } = await jwtVerify(tokens.access_token, createRemoteJWKSet(new URL(`${server.issuer}/jwks`)), {
      issuer: server.issuer,
      audience: 'https://api.example.test',
      typ: 'at+jwt',
    });
    expect(payload.sub).toBe(fixtures.user.id);
    expect(payload.scope).toBe('notes:read');
  });
});

describe('refresh tokens', () => {
  it('rotate on every use; reusing a rotated one revokes the whole grant', async () => {
    const rp = await relyingParty(server, fixtures.confidential);
    const first = await (await signIn(rp)).tokens();
    const second = await oidc.refreshTokenGrant(rp, first.refresh_token!);
    expect(second.refresh_token).toBeTruthy();
    expect(second.refresh_token).not.toBe(first.refresh_token);
    expect((await oidc.tokenIntrospection(rp, second.access_token)).active).toBe(true);

    await expect(oidc.refreshTokenGrant(rp, first.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });
    // The grant is gone: the newest refresh token and its access token are dead too.
    await expect(oidc.refreshTokenGrant(rp, second.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });
    expect((await oidc.tokenIntrospection(rp, second.access_token)).active).toBe(false);
  });
});

describe('client credentials', () => {
  it('issues an opaque token that introspects as active', async () => {
    const rp = await relyingParty(server, fixtures.confidential);
    const tokens = await oidc.clientCredentialsGrant(rp);
    expect(tokens.access_token.split('.')).toHaveLength(1);
    const info = await oidc.tokenIntrospection(rp, tokens.access_token);
    expect(info).toMatchObject({ active: true, client_id: fixtures.confidential.clientId });
  });

  it('issues an ES256 JWT for a registered API resource', async () => {
    const rp = await relyingParty(server, fixtures.confidential);
    const tokens = await oidc.clientCredentialsGrant(rp, { resource: 'https://api.example.test', scope: 'notes:write' });
    const { payload } = await jwtVerify(tokens.access_token, createRemoteJWKSet(new URL(`${server.issuer}/jwks`)), {
      audience: 'https://api.example.test',
    });
    expect(payload).toMatchObject({ client_id: fixtures.confidential.clientId, scope: 'notes:write' });
  });

  it('keeps a client to the APIs it is limited to', async () => {
    await server.resources.create({ indicator: 'https://billing.example.test', name: 'Billing API', scopes: ['invoices:read'] });
    const limited = await server.clients.create({ name: 'Limited', redirectUris: [REDIRECT_URI], grantTypes: ['client_credentials'], resources: ['https://api.example.test'] });
    const rp = await relyingParty(server, limited);
    await expect(oidc.clientCredentialsGrant(rp, { resource: 'https://billing.example.test' })).rejects.toMatchObject({ error: 'invalid_target' });
    const allowed = await oidc.clientCredentialsGrant(rp, { resource: 'https://api.example.test', scope: 'notes:read' });
    const { payload } = await jwtVerify(allowed.access_token, createRemoteJWKSet(new URL(`${server.issuer}/jwks`)), { audience: 'https://api.example.test' });
    expect(payload.client_id).toBe(limited.clientId);
  });

  it('refuses an unregistered resource', async () => {
    const rp = await relyingParty(server, fixtures.confidential);
    await expect(oidc.clientCredentialsGrant(rp, { resource: 'https://elsewhere.test' })).rejects.toMatchObject({ error: 'invalid_target' });
  });
});

describe('introspection and revocation', () => {
  it('an access token is active until revoked, then inactive', async () => {
    const rp = await relyingParty(server, fixtures.confidential);
    const tokens = await (await signIn(rp)).tokens();
    const before = await oidc.tokenIntrospection(rp, tokens.access_token);
    expect(before).toMatchObject({ active: true, sub: fixtures.user.id, client_id: fixtures.confidential.clientId });
    await oidc.tokenRevocation(rp, tokens.access_token);
    expect((await oidc.tokenIntrospection(rp, tokens.access_token)).active).toBe(false);
    await expect(oidc.fetchUserInfo(rp, tokens.access_token, fixtures.user.id)).rejects.toBeTruthy();
  });

  it('revoking a refresh token ends its grant', async () => {
    const rp = await relyingParty(server, fixtures.confidential);
    const tokens = await (await signIn(rp)).tokens();
    await oidc.tokenRevocation(rp, tokens.refresh_token!);
    expect((await oidc.tokenIntrospection(rp, tokens.refresh_token!)).active).toBe(false);
    await expect(oidc.refreshTokenGrant(rp, tokens.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });
  });
});

describe('RP-initiated logout', () => {
  it('asks for confirmation, ends the session and returns to the registered post-logout URI', async () => {
    const rp = await relyingParty(server, fixtures.confidential);
    const flow = await signIn(rp);
    const tokens = await flow.tokens();
    // Introspected and used just before: read from the token cache, with its session, until then.
    expect((await oidc.tokenIntrospection(rp, tokens.access_token)).active).toBe(true);
    await oidc.fetchUserInfo(rp, tokens.access_token, fixtures.user.id);
    const endSession = oidc.buildEndSessionUrl(rp, { id_token_hint: tokens.id_token!, post_logout_redirect_uri: POST_LOGOUT_URI, state: 'bye' });
    const confirm = await flow.agent.navigate(endSession.toString());
    expect(confirm.html).toContain('Sign out');
    const done = await flow.agent.submit(confirm, /session\/end\/confirm$/, { logout: 'yes' }, POST_LOGOUT_URI);
    expect(done.url).toBe(`${POST_LOGOUT_URI}?state=bye`);
    // The provider's end_session event is recorded without holding up the redirect.
    await expect.poll(async () => (await server.audit.activityOf(fixtures.user.id)).items[0]?.event).toBe('logout');
    const events = (await server.audit.activityOf(fixtures.user.id)).items;
    expect(events[0]).toMatchObject({ event: 'logout', detail: { via: 'browser', client: fixtures.confidential.clientId } });

    // Its access token ended with it, at once.
    expect((await oidc.tokenIntrospection(rp, tokens.access_token)).active).toBe(false);
    await expect(oidc.fetchUserInfo(rp, tokens.access_token, fixtures.user.id)).rejects.toBeTruthy();
    // The session is gone: a new authorization request asks for the password again.
    const again = await flow.agent.navigate((await authorizationRequest(rp)).url);
    expect(again.html).toContain('Email or username');
  });

  it('signs out of the app only, when asked: its tokens end, the Latch session stays for the other apps', async () => {
    const rp = await relyingParty(server, fixtures.confidential);
    const flow = await signIn(rp);
    const tokens = await flow.tokens();
    const endSession = oidc.buildEndSessionUrl(rp, { id_token_hint: tokens.id_token!, post_logout_redirect_uri: POST_LOGOUT_URI, state: 'app-only' });
    const confirm = await flow.agent.navigate(endSession.toString());
    expect(confirm.html).toContain('You are signing out of <strong>Notes</strong>');
    expect(confirm.html).toContain('Only Notes');
    const done = await flow.agent.submit(confirm, /session\/end\/confirm$/, {}, POST_LOGOUT_URI);
    expect(done.url).toBe(`${POST_LOGOUT_URI}?state=app-only`);

    expect((await oidc.tokenIntrospection(rp, tokens.access_token)).active).toBe(false);
    // Another app still signs in without a password.
    const console = await relyingParty(server, fixtures.trusted);
    const silent = await flow.agent.navigate((await authorizationRequest(console, { prompt: 'none' })).url, {}, REDIRECT_URI);
    expect(new URL(silent.url).searchParams.has('code')).toBe(true);
  });
});

describe('a grant in use', () => {
  it('outlives GRANT_TTL while its refresh tokens are used; a first-party login keeps its grant only as long as its tokens', async () => {
    // A consent remembered for 3 seconds; refresh tokens that live 30, access tokens 60.
    const short = await startTestServer({ GRANT_TTL: '3', REFRESH_TOKEN_TTL: '30', ACCESS_TOKEN_TTL: '60' });
    try {
      const own = await seed(short);
      const rp = await relyingParty(short, own.confidential);
      let tokens = await (await signIn(rp, { params: { scope: 'openid offline_access', prompt: 'consent' } })).tokens();
      for (let i = 0; i < 4; i += 1) {
        await new Promise((r) => setTimeout(r, 1500));
        tokens = await oidc.refreshTokenGrant(rp, tokens.refresh_token!);
      }
      // Six seconds on, past the consent's three: the app still works, as long as it keeps refreshing.
      expect((await oidc.tokenIntrospection(rp, tokens.access_token)).active).toBe(true);

      const login = await fetch(`${short.url}/api/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'ada', password: PASSWORD }) });
      const { access_token } = (await login.json()) as { access_token: string };
      const { grantId } = (await short.prisma.oidcPayload.findFirstOrThrow({ where: { model: 'AccessToken', id: access_token } })) as { grantId: string };
      const grant = await short.prisma.oidcPayload.findFirstOrThrow({ where: { model: 'Grant', id: grantId } });
      // As long as its longest-lived token (here the access token), not GRANT_TTL.
      const lifetime = (grant.expiresAt!.getTime() - Date.now()) / 1000;
      expect(lifetime).toBeGreaterThan(55);
      expect(lifetime).toBeLessThanOrEqual(60);
    } finally {
      await short.stop();
    }
  });
});
