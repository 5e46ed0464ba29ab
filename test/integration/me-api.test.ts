import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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

const call = (method: string, path: string, token?: string, body?: unknown) =>
  fetch(`${server.url}/api${path}`, {
    method,
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });

async function newUserSession(email: string) {
  await server.users.create({ email, password: PASSWORD, givenName: 'Tess', emailVerified: true });
  const res = await call('POST', '/auth/login', undefined, { username: email, password: PASSWORD });
  return (await res.json()) as { access_token: string; refresh_token: string };
}

describe('/api/me', () => {
  it('needs a bearer token from a first-party client', async () => {
    const none = await call('GET', '/me');
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toContain('Bearer');
    expect((await call('GET', '/me', 'not-a-token')).status).toBe(401);

    // A third-party app's token for the same user cannot manage the account.
    const rp = await relyingParty(server, fixtures.confidential);
    const thirdParty = await (await signIn(rp)).tokens();
    const res = await call('GET', '/me', thirdParty.access_token);
    expect(res.status).toBe(403);
    expect((await res.json()).code).toBe('FORBIDDEN');
  });

  it('shows and edits the profile; a new email is unverified and gets a confirmation link', async () => {
    const { access_token } = await newUserSession('tess@example.com');
    const me = await (await call('GET', '/me', access_token)).json();
    expect(me).toMatchObject({ email: 'tess@example.com', givenName: 'Tess', emailVerified: true });
    expect(me.passwordHash).toBeUndefined();

    const patched = await call('PATCH', '/me', access_token, { familyName: 'Ting', username: 'tess' });
    expect(await patched.json()).toMatchObject({ givenName: 'Tess', familyName: 'Ting', username: 'tess' });

    const moved = await (await call('PATCH', '/me', access_token, { email: 'tess.new@example.com' })).json();
    expect(moved).toMatchObject({ email: 'tess.new@example.com', emailVerified: false });
    await smtp.waitFor('tess.new@example.com', (m) => m.subject.includes('Confirm your email'));

    const replaced = await (await call('PUT', '/me', access_token, { email: 'tess.new@example.com', name: 'T. T.' })).json();
    expect(replaced).toMatchObject({ name: 'T. T.', givenName: null, familyName: null, username: null });

    expect((await call('PATCH', '/me', access_token, { email: 'ada@example.com' })).status).toBe(409);
    expect((await call('PATCH', '/me', access_token, { isAdmin: true })).status).toBe(400);
    expect((await call('PUT', '/me', access_token, { name: 'no email' })).status).toBe(400);
  });

  it('changes the password with the current one, revoking other sessions but not this one', async () => {
    const here = await newUserSession('pat@example.com');
    const elsewhere = (await (await call('POST', '/auth/login', undefined, { username: 'pat@example.com', password: PASSWORD })).json()) as { access_token: string; refresh_token: string };

    const wrong = await call('POST', '/me/password', here.access_token, { currentPassword: 'nope', newPassword: 'sunny plains garage 7' });
    expect(wrong.status).toBe(400);
    expect((await call('POST', '/me/password', here.access_token, { currentPassword: PASSWORD, newPassword: 'password1' })).status).toBe(400);
    expect((await call('POST', '/me/password', here.access_token, { currentPassword: PASSWORD, newPassword: 'sunny plains garage 7' })).status).toBe(204);

    expect((await call('GET', '/me', here.access_token)).status).toBe(200);
    expect((await call('GET', '/me', elsewhere.access_token)).status).toBe(401);
    expect((await call('POST', '/auth/refresh', undefined, { refresh_token: elsewhere.refresh_token })).status).toBe(400);
    expect((await call('POST', '/auth/refresh', undefined, { refresh_token: here.refresh_token })).status).toBe(200);
  });

  it('lists recent security activity with time, IP and user agent', async () => {
    const { access_token } = await newUserSession('act@example.com');
    await call('POST', '/auth/login', undefined, { username: 'act@example.com', password: 'wrong wrong' });
    await call('POST', '/me/password', access_token, { currentPassword: PASSWORD, newPassword: 'sunny plains garage 7' });
    const { items } = await (await call('GET', '/me/activity', access_token)).json();
    expect(items.map((i: { event: string }) => i.event)).toEqual(['password.changed', 'login.failure', 'login.success']);
    expect(items[0]).toMatchObject({ ip: expect.stringMatching(/127\.0\.0\.1/), userAgent: expect.any(String) });
    expect((await call('GET', '/me/activity?limit=abc', access_token)).status).toBe(400);
  });

  it('deletes the account and every session with it', async () => {
    const { access_token, refresh_token } = await newUserSession('bye@example.com');
    expect((await call('DELETE', '/me', access_token)).status).toBe(204);
    expect((await call('GET', '/me', access_token)).status).toBe(401);
    expect((await call('POST', '/auth/refresh', undefined, { refresh_token })).status).toBe(400);
    expect((await call('POST', '/auth/login', undefined, { username: 'bye@example.com', password: PASSWORD })).status).toBe(401);
    const rp = await relyingParty(server, fixtures.confidential);
    expect((await oidc.tokenIntrospection(rp, access_token)).active).toBe(false);
  });
});
