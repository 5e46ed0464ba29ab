import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as oidc from 'openid-client';
import { startServerWithMail, type TestServer } from '../support/server.js';
import type { SmtpSink } from '../support/smtp-sink.js';
import { authorizationRequest, PASSWORD, REDIRECT_URI, relyingParty, seed, signIn } from '../support/oidc.js';

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

  it('shows and edits the profile; a new email takes effect only once the link mailed to it is followed', async () => {
    const { access_token } = await newUserSession('tess@example.com');
    const me = await (await call('GET', '/me', access_token)).json();
    expect(me).toMatchObject({ email: 'tess@example.com', givenName: 'Tess', emailVerified: true, pendingEmail: null });
    expect(me.passwordHash).toBeUndefined();

    const patched = await call('PATCH', '/me', access_token, { familyName: 'Ting', username: 'tess' });
    expect(await patched.json()).toMatchObject({ givenName: 'Tess', familyName: 'Ting', username: 'tess' });

    // Asked for: the account keeps its address, verified, until the new mailbox answers.
    const asked = await (await call('PATCH', '/me', access_token, { email: 'tess.new@example.com', currentPassword: PASSWORD })).json();
    expect(asked).toMatchObject({ email: 'tess@example.com', emailVerified: true, pendingEmail: 'tess.new@example.com' });
    expect((await call('GET', '/me', access_token)).ok).toBe(true);
    expect(await (await call('GET', '/me', access_token)).json()).toMatchObject({ email: 'tess@example.com', pendingEmail: 'tess.new@example.com' });
    expect(await server.users.findByLogin('tess.new@example.com')).toBeNull();
    const confirm = await smtp.waitFor('tess.new@example.com', (m) => m.subject.includes('Confirm the new email address'));
    expect(smtp.to('tess@example.com')).toHaveLength(0);

    const token = new URL(confirm.link!).searchParams.get('token');
    expect((await call('POST', '/auth/verify-email', undefined, { token })).status).toBe(204);
    expect(await (await call('GET', '/me', access_token)).json()).toMatchObject({ email: 'tess.new@example.com', emailVerified: true, pendingEmail: null });
    const notice = await smtp.waitFor('tess@example.com', (m) => m.subject.includes('email address of your'));
    expect(notice.text).toContain('was changed to tess.new@example.com');
    expect((await call('POST', '/auth/verify-email', undefined, { token })).status).toBe(400);

    // The same address again needs no password; the rest of the profile is replaced.
    const replaced = await (await call('PUT', '/me', access_token, { email: 'tess.new@example.com', name: 'T. T.' })).json();
    expect(replaced).toMatchObject({ name: 'T. T.', givenName: null, familyName: null, username: null });

    expect((await call('PATCH', '/me', access_token, { email: 'ada@example.com', currentPassword: PASSWORD })).status).toBe(409);
    expect((await call('PATCH', '/me', access_token, { isAdmin: true })).status).toBe(400);
    expect((await call('PUT', '/me', access_token, { name: 'no email' })).status).toBe(400);
  });

  it('asks for a new email only with the current password; once moved, links mailed to the old address stop working', async () => {
    const { access_token } = await newUserSession('uma@example.com');
    const forgot = await call('POST', '/auth/forgot-password', undefined, { email: 'uma@example.com' });
    expect(forgot.status).toBe(202);
    expect((await call('POST', '/auth/magic-link', undefined, { email: 'uma@example.com' })).status).toBe(202);
    const tokenOf = async (to: string, match: string) => new URL((await smtp.waitFor(to, (m) => m.subject.includes(match))).link!).searchParams.get('token')!;
    const [reset, magic] = [await tokenOf('uma@example.com', 'Reset your'), await tokenOf('uma@example.com', 'sign-in link')];

    // A stolen token alone cannot move the account to another mailbox.
    for (const currentPassword of [undefined, 'not the password']) {
      const refused = await call('PATCH', '/me', access_token, { email: 'mallory@example.com', currentPassword });
      expect(refused.status).toBe(400);
      expect((await refused.json()).errors).toEqual([expect.objectContaining({ path: 'currentPassword' })]);
    }
    expect((await server.users.findByLogin('uma@example.com'))?.email).toBe('uma@example.com');

    expect((await call('PATCH', '/me', access_token, { email: 'uma.new@example.com', currentPassword: PASSWORD })).status).toBe(200);
    const move = await tokenOf('uma.new@example.com', 'Confirm the new email address');
    expect((await call('POST', '/auth/verify-email', undefined, { token: move })).status).toBe(204);
    const resetAfter = await call('POST', '/auth/reset-password', undefined, { token: reset, password: 'sunny plains garage 7' });
    expect(resetAfter.status).toBe(400);
    expect((await resetAfter.json()).code).toBe('INVALID_TOKEN');
    const magicAfter = await call('POST', '/auth/magic-link/verify', undefined, { token: magic });
    expect(magicAfter.status).toBe(400);
    expect((await magicAfter.json()).code).toBe('INVALID_TOKEN');
  });

  it('never gives an account an address nobody proved: its owner signing in by emailed link gets an account of their own', async () => {
    // Mallory asks to move her account onto an address she does not hold.
    const mallory = await newUserSession('mallory.own@example.com');
    const asked = await call('PATCH', '/me', mallory.access_token, { email: 'victim@corp.example', currentPassword: PASSWORD });
    expect(asked.status).toBe(200);
    // Asked for, nothing changed yet: the activity says so, and no more.
    const { id: malloryId } = await asked.json();
    expect((await server.audit.search({ userId: malloryId, event: 'account.updated' })).items).toHaveLength(0);
    expect((await server.audit.search({ userId: malloryId, event: 'email.change_requested' })).items).toHaveLength(1);
    const link = new URL((await smtp.waitFor('victim@corp.example', (m) => m.subject.includes('Confirm the new email address'))).link!);

    // The address's owner, who never followed that link, finds no account at it: no sign-in link,
    // no reset link, and registering works.
    expect(await server.users.findByLogin('victim@corp.example')).toBeNull();
    expect((await call('POST', '/auth/magic-link', undefined, { email: 'victim@corp.example' })).status).toBe(202);
    expect((await call('POST', '/auth/forgot-password', undefined, { email: 'victim@corp.example' })).status).toBe(202);
    await server.accounts.settled();
    expect(await server.prisma.emailToken.count({ where: { email: 'victim@corp.example', purpose: { not: 'email-change' } } })).toBe(0);
    await new Promise((r) => setTimeout(r, 300));
    expect(smtp.to('victim@corp.example')).toHaveLength(0);
    const registered = await call('POST', '/auth/register', undefined, { email: 'victim@corp.example', password: 'violet harbour lantern 4' });
    expect(registered.status).toBe(201);

    // Mallory's link, followed now, cannot take the address from its owner's account.
    const late = await call('POST', '/auth/verify-email', undefined, { token: link.searchParams.get('token') });
    expect(late.status).toBe(409);
    expect((await late.json()).code).toBe('EMAIL_TAKEN');
    expect((await call('PATCH', '/me', mallory.access_token, { email: 'victim@corp.example', currentPassword: PASSWORD })).status).toBe(409);
    expect(await (await call('GET', '/me', mallory.access_token)).json()).toMatchObject({ email: 'mallory.own@example.com' });
  });

  it('ends a waiting address change when the password changes, so whoever knew the old one cannot finish it', async () => {
    const { access_token } = await newUserSession('wes@example.com');
    expect((await call('PATCH', '/me', access_token, { email: 'wes.thief@example.com', currentPassword: PASSWORD })).status).toBe(200);
    const link = new URL((await smtp.waitFor('wes.thief@example.com', (m) => m.subject.includes('Confirm the new email address'))).link!);
    expect((await call('POST', '/me/password', access_token, { currentPassword: PASSWORD, newPassword: 'sunny plains garage 7' })).status).toBe(204);
    const used = await call('POST', '/auth/verify-email', undefined, { token: link.searchParams.get('token') });
    expect(used.status).toBe(400);
    expect((await used.json()).code).toBe('INVALID_TOKEN');
    expect(await (await call('GET', '/me', access_token)).json()).toMatchObject({ email: 'wes@example.com', pendingEmail: null });
  });

  it("ends a waiting address change when an admin sets the account's address, so the link cannot undo the admin's edit", async () => {
    const { access_token } = await newUserSession('vic@example.com');
    expect((await call('PATCH', '/me', access_token, { email: 'vic.thief@example.com', currentPassword: PASSWORD })).status).toBe(200);
    const link = new URL((await smtp.waitFor('vic.thief@example.com', (m) => m.subject.includes('Confirm the new email address'))).link!);

    await server.users.create({ email: 'vic.admin@example.com', password: PASSWORD, isAdmin: true, emailVerified: true });
    const admin = (await (await call('POST', '/auth/login', undefined, { username: 'vic.admin@example.com', password: PASSWORD })).json()) as { access_token: string };
    const { id } = await (await call('GET', '/me', access_token)).json();
    expect((await call('PATCH', `/users/${id}`, admin.access_token, { email: 'vic.recovered@example.com' })).status).toBe(200);

    expect(await (await call('GET', '/me', access_token)).json()).toMatchObject({ email: 'vic.recovered@example.com', pendingEmail: null });
    const used = await call('POST', '/auth/verify-email', undefined, { token: link.searchParams.get('token') });
    expect(used.status).toBe(400);
    expect((await used.json()).code).toBe('INVALID_TOKEN');
    expect(await (await call('GET', '/me', access_token)).json()).toMatchObject({ email: 'vic.recovered@example.com' });
  });

  it('counts wrong current passwords as failed sign-ins of the account, so a stolen token cannot guess freely', async () => {
    const { access_token } = await newUserSession('guess@example.com');
    const statuses: number[] = [];
    for (let i = 0; i < 6; i += 1) {
      statuses.push((await call('PATCH', '/me', access_token, { email: 'thief@example.com', currentPassword: `guess ${i}` })).status);
    }
    // The account's limit is 5 failures (LOGIN_MAX_FAILURES_PER_ACCOUNT): then even the right one waits.
    expect(statuses).toEqual([400, 400, 400, 400, 400, 429]);
    expect((await call('POST', '/me/password', access_token, { currentPassword: PASSWORD, newPassword: 'sunny plains garage 7' })).status).toBe(429);
    expect((await server.users.findByLogin('guess@example.com'))?.email).toBe('guess@example.com');
  });

  it('changes the email of an account without a password only on the account page, right after signing in', async () => {
    await server.users.create({ email: 'nopass@example.com', emailVerified: true });
    expect((await call('POST', '/auth/magic-link', undefined, { email: 'nopass@example.com' })).status).toBe(202);
    const link = new URL((await smtp.waitFor('nopass@example.com', (m) => m.subject.includes('sign-in link'))).link!);
    const tokens = await (await call('POST', '/auth/magic-link/verify', undefined, { token: link.searchParams.get('token') })).json();
    const refused = await call('PATCH', '/me', tokens.access_token, { email: 'elsewhere@example.com' });
    expect(refused.status).toBe(403);
    expect((await refused.json()).code).toBe('RECENT_SIGN_IN_REQUIRED');
    expect((await call('PATCH', '/me', tokens.access_token, { name: 'No Pass' })).status).toBe(200);
  });

  it('changes the password with the current one, revoking other sessions but not this one', async () => {
    const here = await newUserSession('pat@example.com');
    const elsewhere = (await (await call('POST', '/auth/login', undefined, { username: 'pat@example.com', password: PASSWORD })).json()) as { access_token: string; refresh_token: string };
    // A browser signed in to an app, and a reset link asked for earlier.
    const rp = await relyingParty(server, fixtures.confidential);
    const browser = await signIn(rp, { login: 'pat@example.com' });
    const appTokens = await browser.tokens();
    expect((await call('POST', '/auth/forgot-password', undefined, { email: 'pat@example.com' })).status).toBe(202);
    const resetLink = new URL((await smtp.waitFor('pat@example.com', (m) => m.subject.includes('Reset your'))).link!);

    const wrong = await call('POST', '/me/password', here.access_token, { currentPassword: 'nope', newPassword: 'sunny plains garage 7' });
    expect(wrong.status).toBe(400);
    expect((await call('POST', '/me/password', here.access_token, { currentPassword: PASSWORD, newPassword: 'password1' })).status).toBe(400);
    expect((await call('POST', '/me/password', here.access_token, { currentPassword: PASSWORD, newPassword: 'sunny plains garage 7' })).status).toBe(204);

    expect((await call('GET', '/me', here.access_token)).status).toBe(200);
    expect((await call('GET', '/me', elsewhere.access_token)).status).toBe(401);
    expect((await call('POST', '/auth/refresh', undefined, { refresh_token: elsewhere.refresh_token })).status).toBe(400);
    expect((await call('POST', '/auth/refresh', undefined, { refresh_token: here.refresh_token })).status).toBe(200);
    // The browser's session and the app's tokens end too, and so does the reset link.
    const silent = await authorizationRequest(rp, { prompt: 'none' });
    const answer = await browser.agent.navigate(silent.url, {}, REDIRECT_URI);
    expect(new URL(answer.url).searchParams.get('error')).toBe('login_required');
    expect((await oidc.tokenIntrospection(rp, appTokens.access_token)).active).toBe(false);
    expect((await call('POST', '/auth/reset-password', undefined, { token: resetLink.searchParams.get('token'), password: 'quiet orchard lantern 9' })).status).toBe(400);
  });

  it('lists recent security activity with time, IP and user agent', async () => {
    const { access_token } = await newUserSession('act@example.com');
    await call('POST', '/auth/login', undefined, { username: 'act@example.com', password: 'wrong wrong' });
    await call('POST', '/me/password', access_token, { currentPassword: PASSWORD, newPassword: 'sunny plains garage 7' });
    const activity = await (await call('GET', '/me/activity', access_token)).json();
    expect(activity.items.map((i: { event: string }) => i.event)).toEqual(['password.changed', 'login.failure', 'login.success']);
    expect(activity.items[0]).toMatchObject({ ip: expect.stringMatching(/127\.0\.0\.1/), userAgent: expect.any(String) });
    // Paged like every list: the older events on the next page, with the total.
    expect(activity).toMatchObject({ total: 3, page: 1, pageSize: 20 });
    const second = await (await call('GET', '/me/activity?pageSize=2&page=2', access_token)).json();
    expect(second).toMatchObject({ total: 3, page: 2, pageSize: 2, items: [{ event: 'login.success' }] });
    for (const q of ['pageSize=abc', 'pageSize=101', 'page=0']) expect((await call('GET', `/me/activity?${q}`, access_token)).status, q).toBe(400);
  });

  it("shows what an admin did to the account and when, but not the admin's IP address or browser", async () => {
    const { access_token } = await newUserSession('watched@example.com');
    const me = await (await call('GET', '/me', access_token)).json();
    await server.users.create({ email: 'boss@example.com', password: PASSWORD, emailVerified: true, isAdmin: true });
    const boss = (await (await call('POST', '/auth/login', undefined, { username: 'boss@example.com', password: PASSWORD })).json()).access_token;
    const edit = await fetch(`${server.url}/api/users/${me.id}`, {
      method: 'PATCH',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${boss}`, 'user-agent': 'AdminWorkstation/1.0 (corp-laptop-42)' },
      body: JSON.stringify({ familyName: 'Edited' }),
    });
    expect(edit.status).toBe(200);
    const { items } = await (await call('GET', '/me/activity', access_token)).json();
    expect(items[0]).toEqual({ event: 'admin.user_updated', at: expect.any(String), ip: null, userAgent: null });
    // The user's own sign-in keeps its details.
    expect(items.find((i: { event: string }) => i.event === 'login.success')).toMatchObject({ ip: expect.stringMatching(/127\.0\.0\.1/), userAgent: expect.any(String) });
    // And the account page shows no trace of the admin's browser either.
    expect(JSON.stringify(await server.audit.activityOf(me.id))).not.toContain('corp-laptop-42');
  });

  it('deletes the account only with the current password: a stolen token alone cannot', async () => {
    const { access_token } = await newUserSession('stay@example.com');
    // Missing or wrong: a 400 naming the field.
    for (const body of [undefined, {}, { currentPassword: 'not the password' }]) {
      const refused = await call('DELETE', '/me', access_token, body);
      expect(refused.status, JSON.stringify(body)).toBe(400);
      expect(refused.headers.get('content-type')).toContain('application/problem+json');
      const problem = await refused.json();
      expect(problem).toMatchObject({ code: 'VALIDATION_FAILED', detail: expect.stringMatching(/password/) });
      expect(problem.errors).toEqual([expect.objectContaining({ path: 'currentPassword' })]);
    }
    // Input of the wrong shape is refused at the edge, never a 500.
    const raw = (body: string) => fetch(`${server.url}/api/me`, { method: 'DELETE', headers: { 'content-type': 'application/json', authorization: `Bearer ${access_token}` }, body });
    for (const res of [
      await call('DELETE', '/me', access_token, { currentPassword: 42 }),
      await call('DELETE', '/me', access_token, { currentPassword: '' }),
      await call('DELETE', '/me', access_token, { currentPassword: 'x'.repeat(1025) }),
      await call('DELETE', '/me', access_token, ['not', 'an', 'object']),
      await raw('{"currentPassword":'),
    ]) {
      expect(res.status).toBe(400);
      expect((await res.json()).code).toBe('VALIDATION_FAILED');
    }
    expect((await call('GET', '/me', access_token)).status).toBe(200);
    expect(await server.users.findByLogin('stay@example.com')).not.toBeNull();
  });

  it('counts wrong passwords to delete the account as failed sign-ins of it', async () => {
    const { access_token } = await newUserSession('guess-delete@example.com');
    const statuses: number[] = [];
    for (let i = 0; i < 5; i += 1) statuses.push((await call('DELETE', '/me', access_token, { currentPassword: `guess ${i}` })).status);
    expect(statuses).toEqual([400, 400, 400, 400, 400]);
    // The account's limit is reached: even the right password waits.
    const throttled = await call('DELETE', '/me', access_token, { currentPassword: PASSWORD });
    expect(throttled.status).toBe(429);
    expect(throttled.headers.get('retry-after')).toMatch(/^\d+$/);
    expect(await server.users.findByLogin('guess-delete@example.com')).not.toBeNull();
  });

  it('deletes an account without a password only on the account page, right after signing in', async () => {
    await server.users.create({ email: 'nopass-delete@example.com', emailVerified: true });
    expect((await call('POST', '/auth/magic-link', undefined, { email: 'nopass-delete@example.com' })).status).toBe(202);
    const link = new URL((await smtp.waitFor('nopass-delete@example.com', (m) => m.subject.includes('sign-in link'))).link!);
    const tokens = await (await call('POST', '/auth/magic-link/verify', undefined, { token: link.searchParams.get('token') })).json();
    for (const body of [undefined, { currentPassword: 'anything at all' }]) {
      const refused = await call('DELETE', '/me', tokens.access_token, body);
      expect(refused.status).toBe(403);
      expect(await refused.json()).toMatchObject({ code: 'RECENT_SIGN_IN_REQUIRED', detail: expect.stringContaining('account page') });
    }
    expect(await server.users.findByLogin('nopass-delete@example.com')).not.toBeNull();
  });

  it('documents the password that deleting the account takes', async () => {
    const doc = await (await fetch(`${server.url}/api/openapi.json`)).json();
    const op = doc.paths['/api/me'].delete;
    expect(op.requestBody.content['application/json'].schema.properties).toHaveProperty('currentPassword');
    expect(Object.keys(op.responses)).toEqual(expect.arrayContaining(['204', '400', '403', '409', '429']));
    expect(op.responses['403'].description).toContain('RECENT_SIGN_IN_REQUIRED');
    expect(op.responses['429'].content).toHaveProperty('application/problem+json');
  });

  it('deletes the account and every session with it', async () => {
    const { access_token, refresh_token } = await newUserSession('bye@example.com');
    expect((await call('DELETE', '/me', access_token, { currentPassword: PASSWORD })).status).toBe(204);
    expect((await call('GET', '/me', access_token)).status).toBe(401);
    expect((await call('POST', '/auth/refresh', undefined, { refresh_token })).status).toBe(400);
    expect((await call('POST', '/auth/login', undefined, { username: 'bye@example.com', password: PASSWORD })).status).toBe(401);
    const rp = await relyingParty(server, fixtures.confidential);
    expect((await oidc.tokenIntrospection(rp, access_token)).active).toBe(false);
  });
});
