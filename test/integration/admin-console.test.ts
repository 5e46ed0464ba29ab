import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../support/server.js';
import { PASSWORD } from '../support/oidc.js';
import { throttleKey } from '../../src/auth/throttle-counters.js';
import { createUserAgent, findForm, type Page } from '../support/user-agent.js';

/**
 * The admin console (/admin) over plain HTTP: who may open what, and how mistakes are answered.
 * The journeys themselves run in a real browser in test/e2e/admin-console.test.ts.
 */

let server: TestServer;

beforeAll(async () => {
  server = await startTestServer();
  await server.users.create({ email: 'root@example.com', username: 'root', password: PASSWORD, isAdmin: true, isStaff: true, emailVerified: true });
  await server.users.create({ email: 'helper@example.com', username: 'helper', password: PASSWORD, isStaff: true, emailVerified: true });
  await server.users.create({ email: 'plain@example.com', username: 'plain', password: PASSWORD, emailVerified: true });
});
afterAll(() => server?.stop());

const url = (path: string) => `${server.url}${path}`;

function expectPage(page: Page, status: number, ...texts: string[]) {
  expect(page.status, page.html.slice(0, 3000)).toBe(status);
  for (const text of texts) expect(page.html).toContain(text);
}

/** Every visible input, select and textarea has an id and a <label for> naming it. */
function expectLabelledControls(html: string) {
  const controls = /<(input|select|textarea)(?![^>]*type="hidden")[^>]*>/g;
  const unnamed = [...html.matchAll(controls)].filter((m) => !/\bid="/.test(m[0]));
  expect(unnamed.map((m) => m[0])).toEqual([]);
  for (const [tag] of html.matchAll(controls)) {
    const id = /\bid="([^"]+)"/.exec(tag)![1];
    expect(html, `label for #${id}`).toContain(`<label for="${id}">`);
  }
}

/** A browser-like agent that opened `path`, signed in on the login page it was sent to, and came back. */
async function signedIn(login: string, path = '/admin') {
  const agent = createUserAgent();
  const loginPage = await agent.navigate(url(path));
  expect(loginPage.url).toMatch(/\/interaction\/[^/]+$/);
  const page = await agent.submit(loginPage, '/login', { login, password: PASSWORD });
  return { agent, page };
}

/** POSTs a console form from `from` (its CSRF token) with exactly `values`, following the redirect. */
function post(agent: ReturnType<typeof createUserAgent>, from: Page, action: string, values: Record<string, string> = {}) {
  const csrf = /name="_csrf" value="([^"]+)"/.exec(from.html)![1]!;
  return agent.navigate(url(action), { method: 'POST', body: new URLSearchParams({ _csrf: csrf, ...values }), headers: { 'content-type': 'application/x-www-form-urlencoded' } });
}

const userId = async (login: string) => (await server.users.findByLogin(login))!.id;

describe('access', () => {
  it('sends anonymous visitors to sign in, keeping the page they asked for (a local path only)', async () => {
    const agent = createUserAgent();
    const res = await agent.request(url('/admin/users?search=ada&page=2'));
    expect(res.status).toBe(303);
    const location = new URL(res.headers.get('location')!, server.url);
    expect(location.pathname).toBe('/account/login');
    expect(location.searchParams.get('next')).toBe('/admin/users?search=ada&page=2');
    expect(res.headers.get('cache-control')).toBe('no-store');

    const { page } = await signedIn('root', '/admin/users?search=root');
    expect(page.url).toBe(url('/admin/users?search=root'));
    expectPage(page, 200, '<h1>Users</h1>', 'root@example.com');
    expect(page.html).not.toContain('helper@example.com');

    // Another origin as `next` is ignored: the callback goes to /account as before.
    for (const next of ['//evil.example/admin', 'https://evil.example/', '/\\evil.example']) {
      const agent2 = createUserAgent();
      const login = await agent2.navigate(url(`/account/login?next=${encodeURIComponent(next)}`));
      const landed = await agent2.submit(login, '/login', { login: 'plain', password: PASSWORD });
      expect(landed.url).toBe(url('/account'));
    }
  });

  it('shows ordinary users a 403 page on every console page', async () => {
    const { agent, page } = await signedIn('plain');
    expect(page.url).toBe(url('/admin'));
    expectPage(page, 403, 'You cannot open this page', 'The admin console is for admins and staff.');
    for (const path of ['/admin/users', '/admin/apps', '/admin/settings', `/admin/users/${await userId('plain')}`]) {
      expect((await agent.navigate(url(path))).status, path).toBe(403);
    }
  });

  it('lets staff use the user pages only: 403 on apps, sessions, settings and audit, and no role changes', async () => {
    const { agent, page } = await signedIn('helper');
    expect(page.url).toBe(url('/admin/users'));
    expectPage(page, 200, '<h1>Users</h1>', 'plain@example.com');
    expect(page.html).not.toContain('href="/admin/apps"');
    expect(page.html).not.toContain('name="isAdmin"');
    for (const path of ['/admin/apps', '/admin/sessions', '/admin/settings', '/admin/audit']) {
      expectPage(await agent.navigate(url(path)), 403, 'Only admins can open this part of the console.');
    }

    const plainId = await userId('plain');
    const userPage = await agent.navigate(url(`/admin/users/${plainId}`));
    expectPage(userPage, 200, 'Email a password-reset link');
    expect(userPage.html).not.toContain('name="isAdmin"');
    expect(userPage.html).not.toContain('Disable user');
    expect(userPage.html).not.toContain('Delete user');
    expectLabelledControls(userPage.html);

    // The profile is theirs to edit; roles are not, even in a forged form.
    const saved = await agent.submit(userPage, `/admin/users/${plainId}`, { email: 'plain@example.com', username: 'plain', name: 'Plain Person' });
    expectPage(saved, 200, 'The changes are saved.', 'value="Plain Person"');
    const forged = await agent.submit(userPage, `/admin/users/${plainId}`, { email: 'plain@example.com', username: 'plain', flags: '1', isAdmin: 'on', emailVerified: 'on' });
    expectPage(forged, 403, 'Only admins may change roles and the active flag.');
    expect(await server.users.findById(plainId)).toMatchObject({ isAdmin: false, name: 'Plain Person' });
    expectPage(await post(agent, userPage, `/admin/users/${plainId}/active`, { active: 'false' }), 403, 'Only admins can open this part');
    expectPage(await post(agent, userPage, `/admin/users/${plainId}/delete`, { confirm: 'on' }), 403);
    expect((await server.users.findById(plainId))!.active).toBe(true);

    // An admin's page is read-only to staff, and stays so when posted to.
    const rootId = await userId('root');
    const adminPage = await agent.navigate(url(`/admin/users/${rootId}`));
    expectPage(adminPage, 200, 'Staff may edit ordinary users only.');
    expect(adminPage.html).not.toContain('Save changes');
    expect(adminPage.html).not.toContain('Email a password-reset link');
    const edit = await post(agent, userPage, `/admin/users/${rootId}`, { email: 'root@example.com', username: 'root', name: 'Renamed' });
    expectPage(edit, 403, 'Staff may edit ordinary users only.');
    expectPage(await post(agent, userPage, `/admin/users/${rootId}/reset-link`), 403, 'Staff may send reset links to ordinary users only.');
    expect((await server.users.findById(rootId))!.name).toBeNull();

    // Staff create ordinary users (no roles).
    const created = await post(agent, page, '/admin/users', { email: 'new-by-staff@example.com', username: 'newbystaff', password: 'violet kettle orbit 42' });
    expectPage(created, 200, 'new-by-staff@example.com is created.');
    expect(await server.users.findByLogin('newbystaff')).toMatchObject({ isAdmin: false, isStaff: false, emailVerified: false });
    const forgedCreate = await post(agent, page, '/admin/users', { email: 'sneaky@example.com', username: 'sneaky', password: 'violet kettle orbit 42', flags: '1', isAdmin: 'on' });
    expectPage(forgedCreate, 403, 'Only admins may set roles and the active flag.');
    expect(await server.users.findByLogin('sneaky')).toBeNull();
  });
});

describe('forms', () => {
  it('refuses a POST without a valid _csrf token with 403, changing nothing', async () => {
    const { agent } = await signedIn('root');
    const plainId = await userId('plain');
    const res = await agent.request(url(`/admin/users/${plainId}/active`), {
      method: 'POST',
      body: new URLSearchParams({ active: 'false' }),
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(res.status).toBe(403);
    expect(await res.text()).toContain('This form expired');
    const anonymous = await createUserAgent().request(url('/admin/settings'), { method: 'POST', body: new URLSearchParams({ accessTokenTtl: '60' }) });
    expect(anonymous.status).toBe(403);
    expect((await server.users.findById(plainId))!.active).toBe(true);
    expect((await server.settings.get()).accessTokenTtl).not.toBe(60);
  });

  it('will not disable or demote the last active admin: 409 on the page', async () => {
    const { agent, page } = await signedIn('root');
    expect(page.url).toBe(url('/admin'));
    const rootId = await userId('root');
    const mine = await agent.navigate(url(`/admin/users/${rootId}`));
    const disabled = await agent.submit(mine, `/admin/users/${rootId}/active`, { confirm: 'on' });
    expectPage(disabled, 409, 'This is the last active admin; make another admin first', '<h1>root@example.com</h1>');
    const demoted = await agent.submit(mine, `/admin/users/${rootId}`, { email: 'root@example.com', username: 'root', isStaff: 'on', emailVerified: 'on' });
    expectPage(demoted, 409, 'This is the last active admin');
    const deleted = await agent.submit(mine, `/admin/users/${rootId}/delete`, { confirm: 'on' });
    expectPage(deleted, 409, 'This is the last active admin');
    expect(await server.users.findById(rootId)).toMatchObject({ isAdmin: true, active: true });
  });

  it('answers bad input with a 4xx page that says what is wrong and keeps what was typed', async () => {
    const { agent } = await signedIn('root');
    const apps = await agent.navigate(url('/admin/apps'));
    expectLabelledControls(apps.html);
    const badUri = await agent.submit(apps, '/admin/apps', { name: 'Broken', redirectUris: 'https://ok.example/cb\nnot a uri', grantTypes: 'authorization_code' });
    expectPage(badUri, 400, '“not a uri” is not a valid redirect URI', 'value="Broken"', 'https://ok.example/cb\nnot a uri</textarea>');
    expect(badUri.html).toMatch(/id="redirectUris"[^>]*aria-invalid="true"/);
    const noRedirect = await agent.submit(apps, '/admin/apps', { name: 'No redirect', grantTypes: 'authorization_code' });
    expectPage(noRedirect, 400, 'authorization_code needs at least one redirect URI');
    const publicMachine = await agent.submit(apps, '/admin/apps', { name: 'Odd', public: 'on', grantTypes: 'client_credentials' });
    expectPage(publicMachine, 400, 'a public client cannot use client_credentials');
    const noGrant = await agent.submit(apps, '/admin/apps', { name: 'Nothing' });
    expectPage(noGrant, 400, 'Choose at least one grant type from the list.');
    expect((await server.clients.list()).map((c) => c.name)).not.toContain('Broken');

    const users = await agent.navigate(url('/admin/users'));
    expectLabelledControls(users.html);
    const weak = await post(agent, users, '/admin/users', { email: 'weak@example.com', username: 'weakling', password: 'password1' });
    expectPage(weak, 400, 'too easy to guess', 'value="weak@example.com"');
    expect(weak.html).not.toContain('password1');
    const taken = await post(agent, users, '/admin/users', { email: 'PLAIN@example.com', username: 'someone', password: 'violet kettle orbit 42' });
    expectPage(taken, 409, 'An account with this email already exists');
    const badEmail = await post(agent, users, '/admin/users', { email: 'nope', username: 'x', password: 'violet kettle orbit 42' });
    expectPage(badEmail, 400, 'Enter a valid email address.', 'Enter a username of 2 to 64 letters');
    expect(await server.users.findByLogin('weak@example.com')).toBeNull();

    const settings = await agent.navigate(url('/admin/settings'));
    expectLabelledControls(settings.html);
    const badTtl = await agent.submit(settings, '/admin/settings', { accessTokenTtl: '5', idTokenTtl: '3600', refreshTokenTtl: '86400', loginMaxFailuresPerAccount: '5', loginMaxFailuresPerIp: '100', loginThrottleWindow: '900' });
    expectPage(badTtl, 400, 'Access token lifetime: enter a whole number from 30 to 86400 seconds.', 'value="5"');

    const audit = await agent.navigate(url('/admin/audit?from=31-12-2024&event=nope'));
    expectPage(audit, 400, 'Enter a date as YYYY-MM-DD.', 'Choose an event from the list.');
    // PostgreSQL has no year 0: refused with a message, not a failed query.
    expectPage(await agent.navigate(url('/admin/audit?from=0000-01-01')), 400, 'Use a year from 0001 on.');
    expectLabelledControls(audit.html);
    expectPage(await agent.navigate(url('/admin/audit?user=nobody-at-all')), 200, 'No user, or deleted user&#39;s events, has the id');
    expectPage(await agent.navigate(url('/admin/users/no-such-user')), 404, 'No such user');
    expectPage(await agent.navigate(url('/admin/apps/no-such-app')), 404, 'No such client');
  });

  it("shows a deleted user's history, as the API does, linked from its events", async () => {
    const { agent } = await signedIn('root');
    const gone = await server.users.create({ email: 'gone@example.com', password: PASSWORD, emailVerified: true });
    await server.audit.record('login.success', { userId: gone.id, detail: { method: 'password' } });
    await server.usersAdmin.delete({ kind: 'service', clientId: 'test' }, gone.id, {});
    const history = await agent.navigate(url(`/admin/audit?user=${gone.id}`));
    expectPage(history, 200, 'login.success', `href="/admin/audit?user=${gone.id}"`);
    expect(history.html).not.toContain(`href="/admin/users/${gone.id}"`);
  });

  it("leaves Latch's own apps alone, and shows new secrets once with cache-control: no-store", async () => {
    const { agent } = await signedIn('root');
    const list = await agent.navigate(url('/admin/apps'));
    expectPage(list, 200, 'latch-api', 'latch-account', 'built in');
    const account = await agent.navigate(url('/admin/apps/latch-account'));
    expectPage(account, 200, 'cannot be edited or deleted here');
    expect(account.html).not.toContain('action="/admin/apps/latch-account/delete"');
    const forged = await agent.request(url('/admin/apps/latch-account/delete'), {
      method: 'POST',
      body: new URLSearchParams({ ...findForm(account.html, '/admin/apps/latch-account/revoke').hidden, confirm: 'on' }),
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(forged.status).toBe(403);
    expect(await server.clients.find('latch-account')).toBeTruthy();

    const created = await agent.submit(list, '/admin/apps', { name: 'Worker', grantTypes: 'client_credentials' });
    expectPage(created, 200, 'App registered', 'shown only once');
    expect(created.headers.get('cache-control')).toBe('no-store');
    const secret = /<code class="secret" id="secret">([^<]+)<\/code>/.exec(created.html)![1]!;
    const clientId = /<code id="client-id">([^<]+)<\/code>/.exec(created.html)![1]!;
    const appPage = await agent.navigate(url(`/admin/apps/${clientId}`));
    expect(appPage.html).not.toContain(secret);
    // A new secret, a new key or revoking every token ends what works now: not without the box ticked.
    for (const [action, box] of [['secret', 'confirmRotate'], ['api-keys', 'confirmKey'], ['revoke', 'confirmRevoke']] as const) {
      const refused = await agent.submit(appPage, `/admin/apps/${clientId}/${action}`);
      expectPage(refused, 400, 'Tick the box to confirm');
      expect(refused.html).toMatch(new RegExp(`id="${box}"[^>]*aria-invalid="true"`));
    }
    expect((await server.prisma.apiKey.count({ where: { clientId } }))).toBe(0);
    const key = await agent.submit(appPage, `/admin/apps/${clientId}/api-keys`, { confirm: 'on' });
    expectPage(key, 200, 'New API key', 'latch_');
    expect(key.headers.get('cache-control')).toBe('no-store');
    const deleteUnconfirmed = await agent.submit(appPage, `/admin/apps/${clientId}/delete`);
    expectPage(deleteUnconfirmed, 400, 'Tick the box to confirm');
    const deleted = await agent.submit(appPage, `/admin/apps/${clientId}/delete`, { confirm: 'on' });
    expectPage(deleted, 200, 'The app is deleted');
    expect(deleted.url).toBe(url('/admin/apps?notice=app_deleted'));
  });
});

describe('lists and actions', () => {
  it('pages through users in a stable order, keeping the search in the links', async () => {
    for (let i = 0; i < 23; i += 1) await server.users.create({ email: `member${String(i).padStart(2, '0')}@example.com`, password: PASSWORD });
    const { agent } = await signedIn('root');
    const emailsOf = (page: Page) => [...page.html.matchAll(/<td><a href="\/admin\/users\/[^"]+">([^<]+)<\/a><\/td>/g)].map((m) => m[1]!);
    const first = await agent.navigate(url('/admin/users?search=MEMBER'));
    expectPage(first, 200, 'Users 1–20 of 23 matching “MEMBER”', 'href="/admin/users?search=MEMBER&amp;page=2"');
    const second = await agent.navigate(url('/admin/users?search=MEMBER&page=2'));
    expectPage(second, 200, 'Users 21–23 of 23', 'href="/admin/users?search=MEMBER"');
    const all = [...emailsOf(first), ...emailsOf(second)];
    expect(all).toHaveLength(23);
    expect(new Set(all).size).toBe(23);
    expect(emailsOf(await agent.navigate(url('/admin/users?search=MEMBER')))).toEqual(emailsOf(first));
    expectPage(await agent.navigate(url('/admin/users?search=nobody-at-all')), 200, 'No users match “nobody-at-all”.');
    expect((await agent.navigate(url('/admin/users?page=abc'))).status).toBe(200);
  });

  it('emails a reset link (audited with the admin as actor), but not to a disabled account', async () => {
    const target = await server.users.create({ email: 'forgot@example.com', password: PASSWORD, emailVerified: true });
    const { agent } = await signedIn('root');
    const page = await agent.navigate(url(`/admin/users/${target.id}`));
    expectLabelledControls(page.html);
    const sent = await agent.submit(page, `/admin/users/${target.id}/reset-link`);
    expectPage(sent, 200, 'We emailed a password-reset link to forgot@example.com.');
    const [event] = (await server.audit.search({ event: 'admin.reset_link_sent', userId: target.id })).items;
    expect(event).toMatchObject({ actorId: await userId('root'), userId: target.id });
    expect(await server.prisma.emailToken.count({ where: { userId: target.id } })).toBe(1);
    // The user sees that a reset was asked for, not from where: that was the admin's request.
    await expect.poll(async () => (await server.audit.activityOf(target.id)).items.find((e) => e.event === 'password.reset_requested')).toMatchObject({ ip: null, userAgent: null });
    expect((await server.audit.activityOf(target.id)).items.every((e) => e.ip === null && e.userAgent === null)).toBe(true);
    // Counted against the admin's own address, not one bucket that every admin and staff member would share.
    expect(await server.prisma.rateLimiterFlexible.findUnique({ where: { key: `mail-ip:reset-password:${throttleKey('unknown')}` } })).toBeNull();
    expect(await server.prisma.rateLimiterFlexible.count({ where: { key: { startsWith: 'mail-ip:reset-password:' } } })).toBe(1);

    const disabled = await agent.submit(page, `/admin/users/${target.id}/active`, { confirm: 'on' });
    expectPage(disabled, 200, 'forgot@example.com is disabled');
    const refused = await agent.submit(disabled, `/admin/users/${target.id}/reset-link`);
    expectPage(refused, 400, 'This user is disabled; enable the account before sending a reset link.');
    expect(await server.prisma.emailToken.count({ where: { userId: target.id } })).toBe(1);
  });

  it('lists sessions and grants and revokes them: the user must sign in again', async () => {
    await server.users.create({ email: 'browsing@example.com', password: PASSWORD, emailVerified: true });
    const user = createUserAgent();
    const login = await user.navigate(url('/account'));
    expect((await user.submit(login, '/login', { login: 'browsing@example.com', password: PASSWORD })).url).toBe(url('/account'));

    const { agent } = await signedIn('root');
    const sessions = await agent.navigate(url('/admin/sessions'));
    expectPage(sessions, 200, 'browsing@example.com', 'Latch account', 'aria-label="Revoke the session of browsing@example.com, signed in ');
    const browsingId = await userId('browsing@example.com');
    const userPage = await agent.navigate(url(`/admin/users/${browsingId}`));
    const sessionAction = /action="(\/admin\/sessions\/[^"]+\/revoke)"/.exec(userPage.html)![1]!;
    const revoked = await agent.submit(userPage, sessionAction, { confirm: 'on' });
    expect(revoked.url).toBe(url(`/admin/users/${browsingId}?notice=session_revoked`));
    // The grant the session signed in with ended with it, as signing out there would have.
    expectPage(revoked, 200, 'The session is ended.', 'No active browser sessions.', 'No app holds a grant from this user.');
    const again = await user.navigate(url('/account'));
    expect(again.url).toMatch(/\/interaction\/[^/]+$/);
    expectPage(await agent.submit(userPage, sessionAction, { confirm: 'on' }), 200, 'That had already ended; nothing to revoke.');

    // Signed in again, a grant alone can be revoked.
    expect((await user.submit(again, '/login', { login: 'browsing@example.com', password: PASSWORD })).url).toBe(url('/account'));
    const withGrant = await agent.navigate(url(`/admin/users/${browsingId}`));
    const grantAction = /action="(\/admin\/grants\/[^"]+\/revoke)"/.exec(withGrant.html)![1]!;
    expectPage(await agent.submit(withGrant, grantAction, { confirm: 'on' }), 200, 'The grant is revoked', 'No app holds a grant from this user.');
    const audit = await agent.navigate(url(`/admin/audit?event=admin.session_revoked`));
    expectPage(audit, 200, 'admin.session_revoked', 'root@example.com');
  });

  it('disables a user, or ends one session or grant, only with its box ticked: unticked, nothing changes', async () => {
    const target = await server.users.create({ email: 'careful@example.com', password: PASSWORD, emailVerified: true });
    const user = createUserAgent();
    const login = await user.navigate(url('/account'));
    expect((await user.submit(login, '/login', { login: 'careful@example.com', password: PASSWORD })).url).toBe(url('/account'));
    const held = () => server.prisma.oidcPayload.count({ where: { accountId: target.id, model: { in: ['Session', 'Grant'] } } });
    expect(await held()).toBe(2);

    const { agent } = await signedIn('root');
    const page = await agent.navigate(url(`/admin/users/${target.id}`));
    expectLabelledControls(page.html);
    const sessionAction = /action="(\/admin\/sessions\/[^"]+\/revoke)"/.exec(page.html)![1]!;
    const grantAction = /action="(\/admin\/grants\/[^"]+\/revoke)"/.exec(page.html)![1]!;
    const sessions = await agent.navigate(url('/admin/sessions'));
    expectLabelledControls(sessions.html);
    const refusals = [
      [page, `/admin/users/${target.id}/active`, 'Tick the box to confirm that this user is to be disabled and signed out everywhere.', '<h1>careful@example.com</h1>'],
      [page, sessionAction, 'Tick the box to confirm that this session is to be ended.', '<h1>careful@example.com</h1>'],
      [page, grantAction, 'Tick the box to confirm that this grant is to be revoked, with every token issued under it.', '<h1>careful@example.com</h1>'],
      [sessions, sessionAction, 'Tick the box to confirm that this session is to be ended.', '<h1>Sessions</h1>'],
      [sessions, grantAction, 'Tick the box to confirm that this grant is to be revoked', '<h1>Sessions</h1>'],
    ] as const;
    for (const [from, action, message, heading] of refusals) {
      const refused = await agent.submit(from, action);
      expectPage(refused, 400, message, heading);
      // The box of that form is the one marked.
      expect(refused.html, action).toMatch(new RegExp(`action="${action}"[^>]*>(?:(?!</form>)[\\s\\S])*name="confirm"[^>]*aria-invalid="true"`));
    }
    expect(await server.users.findById(target.id)).toMatchObject({ active: true });
    expect(await held()).toBe(2);
    expect((await user.navigate(url('/account'))).url).toBe(url('/account'));
    expect((await server.audit.search({ userId: target.id, event: 'admin.session_revoked' })).total).toBe(0);
    expect((await server.audit.search({ userId: target.id, event: 'admin.grant_revoked' })).total).toBe(0);
    expect((await server.audit.search({ userId: target.id, event: 'admin.user_updated' })).total).toBe(0);

    // Ticked, each takes effect; enabling again takes no box.
    expectPage(await agent.submit(sessions, grantAction, { confirm: 'on' }), 200, 'The grant is revoked', '<h1>Sessions</h1>');
    expectPage(await agent.submit(page, sessionAction, { confirm: 'on' }), 200, 'The session is ended.', 'No active browser sessions.');
    expect(await held()).toBe(0);
    const disabled = await agent.submit(page, `/admin/users/${target.id}/active`, { confirm: 'on' });
    expectPage(disabled, 200, 'careful@example.com is disabled and signed out everywhere.');
    expect(disabled.html).not.toContain('id="confirmDisable"');
    expectPage(await agent.submit(disabled, `/admin/users/${target.id}/active`), 200, 'careful@example.com is enabled again.');
    expect(await server.users.findById(target.id)).toMatchObject({ active: true });
    // A forged value is neither.
    expectPage(await post(agent, page, `/admin/users/${target.id}/active`, { active: 'maybe', confirm: 'on' }), 400, 'Choose to enable or disable the user.');
  });
});
