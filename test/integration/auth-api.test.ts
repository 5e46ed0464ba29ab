import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import * as oidc from 'openid-client';
import { startServerWithMail, type TestServer } from '../support/server.js';
import type { SmtpSink } from '../support/smtp-sink.js';
import { PASSWORD, relyingParty, seed, signIn } from '../support/oidc.js';

let server: TestServer;
let smtp: SmtpSink;
let stop: () => Promise<void>;
let fixtures: Awaited<ReturnType<typeof seed>>;

beforeAll(async () => {
  ({ server, smtp, stop } = await startServerWithMail());
  fixtures = await seed(server);
});
afterAll(() => stop?.());

const api = (path: string, body?: unknown, init: RequestInit = {}) =>
  fetch(`${server.url}/api${path}`, {
    method: body === undefined ? 'GET' : 'POST',
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    ...init,
    headers: { 'content-type': 'application/json', ...(init.headers as Record<string, string>) },
  });
const bearer = (token: string) => ({ headers: { authorization: `Bearer ${token}` } });

async function login(username: string, password = PASSWORD, scope?: string) {
  const res = await api('/auth/login', { username, password, ...(scope ? { scope } : {}) });
  return { res, body: (await res.json()) as Record<string, string | number> };
}

describe('POST /api/auth/login', () => {
  it('returns provider-minted tokens that introspect, verify against the JWKS and reach userinfo', async () => {
    const { res, body } = await login('ada');
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(body).toMatchObject({ token_type: 'Bearer', expires_in: 600, scope: 'openid profile email' });
    const { payload } = await jwtVerify(String(body.id_token), createRemoteJWKSet(new URL(`${server.issuer}/jwks`)), { issuer: server.issuer, audience: 'latch-api' });
    expect(payload.sub).toBe(fixtures.user.id);
    expect(payload.amr).toEqual(['pwd']);
    expect(Math.abs(Number(payload.auth_time) - Date.now() / 1000)).toBeLessThan(60);

    const rs = await relyingParty(server, fixtures.confidential);
    expect(await oidc.tokenIntrospection(rs, String(body.access_token))).toMatchObject({ active: true, sub: fixtures.user.id, client_id: 'latch-api' });
    const me = await fetch(`${server.issuer}/me`, bearer(String(body.access_token)));
    expect(await me.json()).toMatchObject({ sub: fixtures.user.id, email: 'Ada@Example.com' });
  });

  it('accepts an OAuth2 password form and an email instead of the username, and omits id_token without openid', async () => {
    const res = await fetch(`${server.url}/api/auth/login`, {
      method: 'POST',
      body: new URLSearchParams({ username: 'ada@example.com', password: PASSWORD, scope: 'profile' }),
    });
    const body = await res.json();
    expect(res.status).toBe(200);
    expect(body.id_token).toBeUndefined();
    expect(body.scope).toBe('profile');
  });

  it('answers a wrong password and an unknown user identically with 401 problem+json', async () => {
    const wrong = await login('ada', 'nope nope nope');
    const unknown = await login('nobody@example.com');
    expect(wrong.res.status).toBe(401);
    expect(wrong.res.headers.get('content-type')).toContain('application/problem+json');
    expect(wrong.body).toMatchObject({ code: 'INVALID_CREDENTIALS', status: 401 });
    expect({ ...unknown.body, instance: undefined }).toEqual({ ...wrong.body, instance: undefined });
  });

  it('rejects bad input with 400 and the field at fault, and malformed JSON with 400', async () => {
    const missing = await api('/auth/login', { password: 'x' });
    expect(missing.status).toBe(400);
    expect((await missing.json()).errors).toEqual([{ path: 'username', message: 'username or email is required' }]);
    const malformed = await fetch(`${server.url}/api/auth/login`, { method: 'POST', body: '{"username":', headers: { 'content-type': 'application/json' } });
    expect(malformed.status).toBe(400);
    const huge = await api('/auth/login', { username: 'ada', password: 'x'.repeat(100_000) });
    expect(huge.status).toBe(413);
    const badScope = await login('ada', PASSWORD, 'openid admin:everything');
    expect(badScope.res.status).toBe(400);
  });
});

describe('refresh and logout', () => {
  it('/refresh rotates the pair; /logout revokes the grant so its access tokens go inactive', async () => {
    const first = (await login('ada')).body;
    const refreshed = await api('/auth/refresh', { refresh_token: first.refresh_token });
    expect(refreshed.status).toBe(200);
    const second = await refreshed.json();
    expect(second.refresh_token).not.toBe(first.refresh_token);
    expect(second.id_token).toBeTruthy();

    const reuse = await api('/auth/refresh', { refresh_token: first.refresh_token });
    expect(reuse.status).toBe(400);
    expect((await reuse.json()).code).toBe('INVALID_TOKEN');

    const again = (await login('ada')).body;
    const rs = await relyingParty(server, fixtures.confidential);
    expect((await oidc.tokenIntrospection(rs, String(again.access_token))).active).toBe(true);
    expect((await api('/auth/logout', { refresh_token: again.refresh_token })).status).toBe(204);
    expect((await oidc.tokenIntrospection(rs, String(again.access_token))).active).toBe(false);
    expect((await api('/auth/refresh', { refresh_token: again.refresh_token })).status).toBe(400);

    // The sign-out shows in the user's activity; a token that ends nothing records nothing.
    const other = (await login('ada')).body;
    const logouts = () => server.prisma.auditEvent.count({ where: { event: 'logout' } });
    const before = await logouts();
    expect((await api('/auth/logout', { refresh_token: 'not-a-token' })).status).toBe(204);
    expect(await logouts()).toBe(before);
    const { items } = await (await fetch(`${server.url}/api/me/activity`, bearer(String(other.access_token)))).json();
    expect(items.filter((i: { event: string }) => i.event === 'logout')).toHaveLength(1);
  });
});

describe('POST /api/auth/logout', () => {
  it("refuses another app's refresh token rather than answer that it ended a login that goes on", async () => {
    const rp = await relyingParty(server, fixtures.confidential);
    const other = await (await signIn(rp, { params: { scope: 'openid offline_access', prompt: 'consent' } })).tokens();
    const res = await api('/auth/logout', { refresh_token: other.refresh_token });
    expect(res.status).toBe(400);
    expect((await res.json()).code).toBe('INVALID_TOKEN');
    expect((await oidc.tokenIntrospection(rp, other.access_token)).active).toBe(true);
    expect((await oidc.refreshTokenGrant(rp, other.refresh_token!)).access_token).toBeTruthy();
  });
});

describe('registration and email verification', () => {
  it('registers with a strong password, emails a verification link, and verifies once', async () => {
    const res = await api('/auth/register', { email: 'Grace@Example.com', password: 'violet kettle orbit 42', name: 'Grace Hopper', username: 'grace' });
    expect(res.status).toBe(201);
    const body = await res.json();
    expect(body.user).toMatchObject({ email: 'Grace@Example.com', emailVerified: false, username: 'grace' });
    expect(body.user.passwordHash).toBeUndefined();

    // Unverified users may sign in by default; their claims say so.
    const tokens = (await login('grace', 'violet kettle orbit 42')).body;
    expect((await (await fetch(`${server.issuer}/me`, bearer(String(tokens.access_token)))).json()).email_verified).toBe(false);

    const mail = await smtp.waitFor('grace@example.com', (m) => m.subject.includes('Confirm your email'));
    expect(mail.text).toContain('expires in 24 hours');
    expect(mail.html).toContain('Confirm email address');
    const token = new URL(mail.link!).searchParams.get('token')!;
    expect((await api('/auth/verify-email', { token })).status).toBe(204);
    expect((await (await fetch(`${server.issuer}/me`, bearer(String(tokens.access_token)))).json()).email_verified).toBe(true);
    const reused = await api('/auth/verify-email', { token });
    expect(reused.status).toBe(400);
    expect((await reused.json()).code).toBe('INVALID_TOKEN');
  });

  it('tells an unconfirmed user with the right password to confirm first when the setting requires it', async () => {
    expect((await api('/auth/register', { email: 'hedy@example.com', password: 'amber lantern sonnet 7' })).status).toBe(201);
    await server.settings.update({ allowUnverifiedLogin: false });
    try {
      const right = await login('hedy@example.com', 'amber lantern sonnet 7');
      expect(right.res.status).toBe(403);
      expect(right.body.code).toBe('EMAIL_NOT_VERIFIED');
      // A wrong password learns nothing about the account.
      const wrong = await login('hedy@example.com', 'amber lantern sonnet 8');
      expect(wrong.res.status).toBe(401);
      expect(wrong.body.code).toBe('INVALID_CREDENTIALS');
    } finally {
      await server.settings.update({ allowUnverifiedLogin: true });
    }
  });

  it('refuses weak, common or self-referencing passwords and taken addresses with clear messages', async () => {
    for (const password of ['short', 'password123', 'lin-grace-lin-2024']) {
      const res = await api('/auth/register', { email: 'lin@example.com', username: 'lin-grace', password });
      expect(res.status).toBe(400);
      const body = await res.json();
      expect(body.code).toBe('WEAK_PASSWORD');
      expect(body.errors[0].path).toBe('password');
    }
    const taken = await api('/auth/register', { email: 'ADA@example.com', password: 'violet kettle orbit 42' });
    expect(taken.status).toBe(409);
    expect((await taken.json()).code).toBe('EMAIL_TAKEN');
    const invalid = await api('/auth/register', { email: 'not-an-email', password: 'violet kettle orbit 42' });
    expect(invalid.status).toBe(400);
    expect((await invalid.json()).errors[0].path).toBe('email');
  });
});

describe('password reset', () => {
  it('keeps one live link when several are asked for at once: a new one ends the previous, also on PostgreSQL', async () => {
    const user = await server.users.create({ email: 'burst@example.com', password: 'amber lantern sonnet 9', emailVerified: true });
    for (let round = 0; round < 3; round += 1) {
      await Promise.all(Array.from({ length: 4 }, () => server.tokens.issue('reset-password', { userId: user.id, email: user.email, ttlSeconds: 600 })));
      expect(await server.prisma.emailToken.count({ where: { userId: user.id, purpose: 'reset-password', consumedAt: null } })).toBe(1);
    }
  });

  it('answers the same for known and unknown addresses and mails only the known one', async () => {
    const known = await api('/auth/forgot-password', { email: 'ada@example.com' });
    const unknown = await api('/auth/forgot-password', { email: 'ghost@example.com' });
    expect(known.status).toBe(202);
    expect(unknown.status).toBe(202);
    expect(await known.json()).toEqual(await unknown.json());
    await smtp.waitFor('ada@example.com', (m) => m.subject.includes('Reset'));
    await new Promise((r) => setTimeout(r, 300));
    expect(smtp.to('ghost@example.com')).toHaveLength(0);
  });

  it('does nothing for a known address until the answer has gone out, so the answer takes as long as for any address', async () => {
    await server.users.create({ email: 'quiet@example.com', password: PASSWORD });
    const links = () => server.prisma.emailToken.count({ where: { email: 'quiet@example.com' } });
    for (const request of [server.accounts.requestPasswordReset, server.accounts.requestMagicLink]) {
      let answer!: () => void;
      const answered = new Promise<void>((resolve) => (answer = resolve));
      const before = await links();
      await request('quiet@example.com', { ip: '203.0.113.7' }, answered);
      await new Promise((r) => setTimeout(r, 200));
      expect(await links()).toBe(before);
      answer();
      await server.accounts.settled();
      expect(await links()).toBe(before + 1);
    }
  });

  it('resets with the emailed link once, signs the user out everywhere, and refuses tampered or reused tokens', async () => {
    await server.users.create({ email: 'reset@example.com', password: PASSWORD });
    const session = (await login('reset@example.com')).body;
    await api('/auth/forgot-password', { email: 'reset@example.com' });
    const mail = await smtp.waitFor('reset@example.com', (m) => m.subject.includes('Reset'));
    expect(mail.text).toContain('expires in 30 minutes');
    const token = new URL(mail.link!).searchParams.get('token')!;

    const tampered = await api('/auth/reset-password', { token: `${token.slice(0, -2)}xx`, password: 'sunny plains garage 7' });
    expect((await tampered.json()).code).toBe('INVALID_TOKEN');
    const weak = await api('/auth/reset-password', { token, password: 'password1' });
    expect((await weak.json()).code).toBe('WEAK_PASSWORD');
    expect((await api('/auth/reset-password', { token, password: 'sunny plains garage 7' })).status).toBe(204);
    expect((await api('/auth/reset-password', { token, password: 'another fine phrase 8' })).status).toBe(400);

    // Every earlier session and token of the user is gone; the new password works, the old does not.
    expect((await api('/auth/refresh', { refresh_token: session.refresh_token })).status).toBe(400);
    expect((await fetch(`${server.issuer}/me`, bearer(String(session.access_token)))).status).toBe(401);
    expect((await login('reset@example.com')).res.status).toBe(401);
    expect((await login('reset@example.com', 'sunny plains garage 7')).res.status).toBe(200);
  });

  it('refuses an expired reset link', async () => {
    await server.users.create({ email: 'late@example.com', password: PASSWORD });
    await api('/auth/forgot-password', { email: 'late@example.com' });
    const token = new URL((await smtp.waitFor('late@example.com')).link!).searchParams.get('token')!;
    await server.prisma.emailToken.updateMany({ where: { email: 'late@example.com' }, data: { expiresAt: new Date(Date.now() - 1000) } });
    expect((await (await api('/auth/reset-password', { token, password: 'sunny plains garage 7' })).json()).code).toBe('INVALID_TOKEN');
  });
});

describe('magic links', () => {
  it('exchanges an emailed link for tokens once; a reset-password token is not a magic link', async () => {
    expect((await api('/auth/magic-link', { email: 'ada@example.com' })).status).toBe(202);
    const mail = await smtp.waitFor('ada@example.com', (m) => m.subject.includes('sign-in link'));
    expect(mail.text).toContain('expires in 15 minutes');
    const token = new URL(mail.link!).searchParams.get('token')!;
    const res = await api('/auth/magic-link/verify', { token });
    expect(res.status).toBe(200);
    const body = await res.json();
    const rs = await relyingParty(server, fixtures.confidential);
    expect(await oidc.tokenIntrospection(rs, body.access_token)).toMatchObject({ active: true, sub: fixtures.user.id });
    expect((await api('/auth/magic-link/verify', { token })).status).toBe(400);

    await api('/auth/forgot-password', { email: 'ada@example.com' });
    const reset = new URL((await smtp.waitFor('ada@example.com', (m) => m.subject.includes('Reset'))).link!).searchParams.get('token')!;
    expect((await api('/auth/magic-link/verify', { token: reset })).status).toBe(400);
  });

  it('ends a password chosen at registration when the address is first proven by a sign-in link', async () => {
    const useLink = async (email: string) => {
      expect((await api('/auth/magic-link', { email })).status).toBe(202);
      const token = new URL((await smtp.waitFor(email, (m) => m.subject.includes('sign-in link'))).link!).searchParams.get('token')!;
      const res = await api('/auth/magic-link/verify', { token });
      expect(res.status).toBe(200);
      return (await res.json()) as { access_token: string };
    };
    // Someone registered this address with a password of their own; its owner then signs in by link.
    expect((await api('/auth/register', { email: 'owner@example.com', password: 'amber lantern sonnet 7' })).status).toBe(201);
    const squatter = (await login('owner@example.com', 'amber lantern sonnet 7')).body;
    // The registrant has also asked to move the account to an address of theirs.
    const patch = (token: string, body: unknown) => fetch(`${server.url}/api/me`, { method: 'PATCH', headers: { ...bearer(token).headers, 'content-type': 'application/json' }, body: JSON.stringify(body) });
    expect((await patch(String(squatter.access_token), { email: 'squatter@evil.example', currentPassword: 'amber lantern sonnet 7' })).status).toBe(200);
    const takeBack = new URL((await smtp.waitFor('squatter@evil.example', (m) => m.subject.includes('Confirm the new email address'))).link!).searchParams.get('token')!;
    const owner = await useLink('owner@example.com');
    // That move ends with the password: its link no longer takes the owner's account away.
    expect(await (await fetch(`${server.url}/api/me`, bearer(owner.access_token))).json()).toMatchObject({ email: 'owner@example.com', pendingEmail: null });
    const late = await api('/auth/verify-email', { token: takeBack });
    expect(late.status).toBe(400);
    expect((await late.json()).code).toBe('INVALID_TOKEN');
    expect((await login('owner@example.com', 'amber lantern sonnet 7')).res.status).toBe(401);
    expect((await fetch(`${server.issuer}/me`, bearer(String(squatter.access_token)))).status).toBe(401);
    expect(await server.users.findByLogin('owner@example.com')).toMatchObject({ emailVerified: true, passwordHash: null });

    // A registrant who confirmed the address keeps the password; so does one who moved to a new
    // address (the move takes its link) and then signs in by link there.
    expect((await api('/auth/register', { email: 'honest@example.com', password: 'amber lantern sonnet 8' })).status).toBe(201);
    const confirm = new URL((await smtp.waitFor('honest@example.com', (m) => m.subject.includes('Confirm your email'))).link!).searchParams.get('token')!;
    expect((await api('/auth/verify-email', { token: confirm })).status).toBe(204);
    const honest = (await login('honest@example.com', 'amber lantern sonnet 8')).body;
    await useLink('honest@example.com');
    const moved = await patch(String(honest.access_token), { email: 'honest.new@example.com', currentPassword: 'amber lantern sonnet 8' });
    expect(moved.status).toBe(200);
    const move = new URL((await smtp.waitFor('honest.new@example.com', (m) => m.subject.includes('Confirm the new email address'))).link!).searchParams.get('token')!;
    expect((await api('/auth/verify-email', { token: move })).status).toBe(204);
    await useLink('honest.new@example.com');
    expect((await login('honest.new@example.com', 'amber lantern sonnet 8')).res.status).toBe(200);
  });

  it('answers the same for unknown addresses', async () => {
    const res = await api('/auth/magic-link', { email: 'ghost2@example.com' });
    expect(res.status).toBe(202);
    expect((await res.json()).message).toBe('If an account exists for this address, we sent it a sign-in link.');
  });
});

describe('first-party grants', () => {
  it('are not advertised in discovery, in either metadata document or at either address', async () => {
    const documents = [`${server.issuer}/.well-known/openid-configuration`, `${server.issuer}/.well-known/oauth-authorization-server`, `${server.url}/.well-known/oauth-authorization-server/o`];
    for (const url of documents) {
      const res = await fetch(url);
      expect(res.status, url).toBe(200);
      const discovery = await res.json();
      expect(discovery.issuer).toBe(server.issuer);
      expect(discovery.grant_types_supported).toEqual(['authorization_code', 'refresh_token', 'client_credentials']);
    }
  });
});

describe('every emailed token', () => {
  // Each kind: how to get one mailed, how to use it, and what using it returns on success.
  const kinds = [
    {
      kind: 'verify-email',
      request: async (email: string) => {
        const session = (await login(email)).body;
        await fetch(`${server.url}/api/me/verification`, { method: 'POST', headers: { authorization: `Bearer ${session.access_token}` } });
      },
      subject: 'Confirm your email',
      use: (token: string) => api('/auth/verify-email', { token }),
    },
    {
      kind: 'reset-password',
      request: (email: string) => api('/auth/forgot-password', { email }),
      subject: 'Reset',
      use: (token: string) => api('/auth/reset-password', { token, password: 'sunny plains garage 7' }),
    },
    {
      kind: 'magic-link',
      request: (email: string) => api('/auth/magic-link', { email }),
      subject: 'sign-in link',
      use: (token: string) => api('/auth/magic-link/verify', { token }),
    },
  ];

  it.each(kinds)('$kind: refused when tampered with, expired or used twice', async ({ kind, request, subject, use }) => {
    const email = `${kind}@example.com`;
    await server.users.create({ email, password: PASSWORD });
    const next = async () => {
      await request(email);
      return new URL((await smtp.waitFor(email, (m) => m.subject.includes(subject))).link!).searchParams.get('token')!;
    };

    const token = await next();
    const flipped = `${token.slice(0, 10)}${token[10] === 'A' ? 'B' : 'A'}${token.slice(11)}`;
    expect((await use(flipped)).status).toBe(400);

    await server.prisma.emailToken.updateMany({ where: { email, purpose: kind }, data: { expiresAt: new Date(Date.now() - 1000) } });
    expect((await use(token)).status).toBe(400);

    const fresh = await next();
    expect((await use(fresh)).status).toBeLessThan(300);
    const again = await use(fresh);
    expect(again.status).toBe(400);
    expect((await again.json()).code).toBe('INVALID_TOKEN');
  });
});
