import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../support/server.js';
import { startSmtpSink, type SmtpSink } from '../support/smtp-sink.js';
import { PASSWORD, seed } from '../support/oidc.js';
import { createUserAgent, type Page } from '../support/user-agent.js';

/**
 * The registration, password-reset, emailed-link and /account pages over plain HTTP (no
 * JavaScript, every redirect visible): the negative cases. The journeys themselves run in a real
 * browser in test/e2e/account-pages.test.ts.
 */

let server: TestServer;
let smtp: SmtpSink;

beforeAll(async () => {
  smtp = await startSmtpSink();
  server = await startTestServer({ SMTP_URL: smtp.url });
  await seed(server);
});
afterAll(async () => {
  await server?.stop();
  await smtp?.close();
});

const STRONG = 'violet kettle orbit 42';
const INVALID_LINK = 'This link or token is invalid, expired or already used';
const url = (path: string) => `${server.url}${path}`;
const tokenOf = (link: string | undefined) => new URL(link!).searchParams.get('token')!;

function expectTokenPageHeaders(page: Page) {
  expect(page.headers.get('referrer-policy')).toBe('no-referrer');
  expect(page.headers.get('cache-control')).toBe('no-store');
}

/** The page answered `status` and shows every one of `texts`. */
function expectPage(page: Page, status: number, ...texts: string[]) {
  expect(page.status, page.html.slice(0, 2000)).toBe(status);
  for (const text of texts) expect(page.html).toContain(text);
}

/** Every visible input has an id and a <label for> naming it. */
function expectLabelledInputs(html: string) {
  const ids = [...html.matchAll(/<input(?![^>]*type="hidden")[^>]*\bid="([^"]+)"/g)].map((m) => m[1]);
  const unnamed = [...html.matchAll(/<input(?![^>]*type="hidden")(?![^>]*\bid=)[^>]*>/g)];
  expect(unnamed).toEqual([]);
  for (const id of ids) expect(html, `label for #${id}`).toContain(`<label for="${id}">`);
}

/** A user and a browser-like agent signed in to /account with the login form. */
async function signedInAgent(email: string, password = PASSWORD) {
  await server.users.create({ email, password, emailVerified: true });
  const agent = createUserAgent();
  const login = await agent.navigate(url('/account'));
  expect(login.url).toMatch(/\/interaction\/[^/]+$/);
  const account = await agent.submit(login, '/login', { login: email, password });
  expect(account.url).toBe(url('/account'));
  expect(account.status).toBe(200);
  return { agent, account };
}

describe('registration page', () => {
  it('re-renders with the policy message and 400 for a weak password, keeping the values but not the password', async () => {
    const agent = createUserAgent();
    const form = await agent.navigate(url('/register'));
    expect(form.status).toBe(200);
    expectLabelledInputs(form.html);
    const page = await agent.submit(form, '/register', { email: 'weak@example.com', username: 'weakling', name: 'Wanda Weak', password: 'password123' });
    expectPage(page, 400, 'value="weak@example.com"', 'value="weakling"', 'value="Wanda Weak"');
    expect(page.html).toMatch(/This password is too easy to guess\..*Try a longer phrase of unrelated words\./);
    expect(page.html).not.toContain('password123');
    expect(page.html).toMatch(/id="password"[^>]*aria-invalid="true"/);
    expect(await server.users.findByLogin('weak@example.com')).toBeNull();
  });

  it('marks an invalid email (400) and a taken one (409) on the form', async () => {
    const agent = createUserAgent();
    const invalid = await agent.submit(await agent.navigate(url('/register')), '/register', { email: 'not-an-email', password: STRONG });
    expectPage(invalid, 400, 'Enter a valid email address.');
    const taken = await agent.submit(invalid, '/register', { email: 'ADA@example.com', password: STRONG });
    expectPage(taken, 409, 'An account with this email already exists');
  });

  it('registers and mails a verification link', async () => {
    const agent = createUserAgent();
    const page = await agent.submit(await agent.navigate(url('/register')), '/register', { email: 'new@example.com', username: '', name: '', password: STRONG });
    expectPage(page, 201, 'Check your inbox');
    expect((await smtp.waitFor('new@example.com')).subject).toContain('Confirm your email');
    expect(await server.users.findByLogin('new@example.com')).toMatchObject({ username: null, name: null, emailVerified: false });
  });
});

describe("from an app's sign-in page", () => {
  it('creating an account or asking for a reset leads back to that sign-in, not to the account page', async () => {
    const { relyingParty, authorizationRequest } = await import('../support/oidc.js');
    const app = await server.clients.create({ name: 'Notes from home', redirectUris: ['http://127.0.0.1:9/callback'] });
    const agent = createUserAgent();
    const login = await agent.navigate((await authorizationRequest(await relyingParty(server, app))).url);
    const signin = /\/interaction\/([^/]+)$/.exec(login.url)![1]!;

    const registerLink = /href="(\/register\?signin=[^"]+)"/.exec(login.html)![1]!;
    const register = await agent.navigate(url(registerLink.replace(/&amp;/g, '&')));
    expect(register.html).toContain(`href="/interaction/${signin}">Sign in</a>`);
    const done = await agent.submit(register, '/register', { email: 'from-notes@example.com', password: STRONG });
    expectPage(done, 201, 'Check your inbox', `href="/interaction/${signin}"`, 'Continue signing in');
    const back = await agent.navigate(url(`/interaction/${signin}`));
    expectPage(back, 200, 'Notes from home');

    const forgotLink = /href="(\/forgot-password\?signin=[^"]+)"/.exec(login.html)![1]!;
    const forgot = await agent.navigate(url(forgotLink.replace(/&amp;/g, '&')));
    const sent = await agent.submit(forgot, '/forgot-password', { email: 'from-notes@example.com' });
    expectPage(sent, 200, 'Check your inbox', `href="/interaction/${signin}"`);

    // Only a sign-in's id is taken: anything else leads to the account page, as before.
    expectPage(await agent.navigate(url('/register?signin=..%2F..%2Fadmin')), 200, 'href="/account">Sign in</a>');
  });
});

describe('CSRF', () => {
  it('refuses every page form posted without _csrf with 403', async () => {
    const agent = createUserAgent();
    await agent.navigate(url('/register')); // has the CSRF cookie, but not the field
    const fields = { email: 'csrf@example.com', password: STRONG, token: 'x'.repeat(43) };
    for (const path of ['/register', '/forgot-password', '/reset-password', '/verify-email', '/magic-link', '/account/profile', '/account/password', '/account/delete', '/account/verification']) {
      const res = await agent.request(url(path), { method: 'POST', body: new URLSearchParams(fields), headers: { 'content-type': 'application/x-www-form-urlencoded' } });
      expect(res.status, path).toBe(403);
      const html = await res.text();
      expect(html, path).toContain('This form expired');
      // A way back to the form, since reloading would send the expired one again.
      expect(html, path).toContain(`<a href="${path.startsWith('/account/') ? '/account' : path}">Open the form again</a>`);
    }
    expect(await server.users.findByLogin('csrf@example.com')).toBeNull();
  });
});

describe('password reset pages', () => {
  it('answers the same for known and unknown addresses, then 429 with its message when asked too often', async () => {
    await server.users.create({ email: 'often@example.com', password: PASSWORD });
    const agent = createUserAgent();
    const known = await agent.submit(await agent.navigate(url('/forgot-password')), '/forgot-password', { email: 'often@example.com' });
    const unknown = await agent.submit(await agent.navigate(url('/forgot-password')), '/forgot-password', { email: 'nobody@example.com' });
    expectPage(known, 200, 'If an account exists for this address, we sent it a link');
    expect(unknown.html.replace(/value="[^"]*"/g, '')).toBe(known.html.replace(/value="[^"]*"/g, ''));
    await smtp.waitFor('often@example.com');

    let last = known;
    for (let i = 0; i < 3 && last.status !== 429; i += 1) {
      last = await agent.submit(await agent.navigate(url('/forgot-password')), '/forgot-password', { email: 'often@example.com' });
    }
    expect(last.status).toBe(429);
    expect(last.headers.get('retry-after')).toMatch(/^\d+$/);
    expect(last.html).toMatch(/Too many requests; try again in \d+ minute\(s\)\./);
  });

  it('shows 400 with a link to ask again for tampered, used and expired tokens, and never a form', async () => {
    await server.users.create({ email: 'reset-neg@example.com', password: PASSWORD });
    const agent = createUserAgent();
    await agent.submit(await agent.navigate(url('/forgot-password')), '/forgot-password', { email: 'reset-neg@example.com' });
    const token = tokenOf((await smtp.waitFor('reset-neg@example.com')).link);

    const tampered = await agent.navigate(url(`/reset-password?token=${token.slice(0, -2)}xx`));
    expectPage(tampered, 400, INVALID_LINK, 'href="/forgot-password"');
    expect(tampered.html).not.toContain('name="password"');
    expectTokenPageHeaders(tampered);
    expect((await agent.navigate(url('/reset-password'))).status).toBe(400);

    const form = await agent.navigate(url(`/reset-password?token=${token}`));
    expect(form.status).toBe(200);
    expectTokenPageHeaders(form);
    expectLabelledInputs(form.html);
    const weak = await agent.submit(form, '/reset-password', { password: 'password1' });
    expectPage(weak, 400, 'too easy to guess');
    const done = await agent.submit(weak, '/reset-password', { password: STRONG });
    expectPage(done, 200, 'Password changed — sign in again');
    expectTokenPageHeaders(done);

    const used = await agent.navigate(url(`/reset-password?token=${token}`));
    expectPage(used, 400, INVALID_LINK);
    const reused = await agent.submit(form, '/reset-password', { password: 'sunny plains garage 7' });
    expectPage(reused, 400, INVALID_LINK);

    await agent.submit(await agent.navigate(url('/forgot-password')), '/forgot-password', { email: 'reset-neg@example.com' });
    const late = tokenOf((await smtp.waitFor('reset-neg@example.com')).link);
    await server.prisma.emailToken.updateMany({ where: { email: 'reset-neg@example.com', consumedAt: null }, data: { expiresAt: new Date(Date.now() - 1000) } });
    const expired = await agent.navigate(url(`/reset-password?token=${late}`));
    expectPage(expired, 400, INVALID_LINK, 'href="/forgot-password"');
  });
});

describe('emailed links are not used by a GET', () => {
  it('verify-email: the link still works after being opened (twice), then only once', async () => {
    const user = await server.accounts.register({ email: 'scan@example.com', password: STRONG }, {});
    const token = tokenOf((await smtp.waitFor('scan@example.com')).link);
    const agent = createUserAgent();
    for (let i = 0; i < 2; i += 1) {
      const page = await agent.navigate(url(`/verify-email?token=${token}`));
      expectPage(page, 200, 'Confirm email address');
      expectTokenPageHeaders(page);
    }
    expect((await server.users.findById(user.id))!.emailVerified).toBe(false);
    const page = await agent.navigate(url(`/verify-email?token=${token}`));
    const done = await agent.submit(page, '/verify-email');
    expectPage(done, 200, 'Email address confirmed');
    expectTokenPageHeaders(done);
    expect((await server.users.findById(user.id))!.emailVerified).toBe(true);
    expect((await agent.submit(page, '/verify-email')).status).toBe(400);
    expect((await agent.navigate(url(`/verify-email?token=${token}`))).html).toContain(INVALID_LINK);
  });

  it('magic-link: the link still works after being opened, and without a pending sign-in it signs in to /account', async () => {
    await server.accounts.requestMagicLink('ada@example.com', {});
    const token = tokenOf((await smtp.waitFor('ada@example.com', (m) => m.subject.includes('sign-in link'))).link);
    const agent = createUserAgent();
    await agent.navigate(url(`/magic-link?token=${token}`));
    const page = await agent.navigate(url(`/magic-link?token=${token}`));
    expect(page.status).toBe(200);
    expectTokenPageHeaders(page);
    expect(page.html).toContain('>Sign in</button>');
    const res = await agent.request(url('/magic-link'), {
      method: 'POST',
      body: new URLSearchParams({ _csrf: /name="_csrf" value="([^"]+)"/.exec(page.html)![1]!, token }),
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(res.status).toBe(303);
    expect(res.headers.get('referrer-policy')).toBe('no-referrer');
    expect(res.headers.get('location')).toBe('/account/login?prompt=login');
    const account = await agent.navigate(url(res.headers.get('location')!));
    expect(account.url).toBe(url('/account'));
    expect(account.html).toContain('Signed in as <strong>Ada@Example.com</strong>');
    expect((await agent.submit(page, '/magic-link')).html).toContain(INVALID_LINK);
  });
});

describe('signing in with an emailed link in a browser that has another sign-in', () => {
  const linkFor = async (email: string) => {
    const mail = await smtp.waitFor(email, (m) => m.subject.includes('sign-in link'));
    return url(`/magic-link?token=${tokenOf(mail.link)}`);
  };
  const useLink = async (agent: ReturnType<typeof createUserAgent>, link: string) => agent.submit(await agent.navigate(link), '/magic-link');

  it('continues as the link\'s user, and leaves nothing that signs anyone in later', async () => {
    const { agent } = await signedInAgent('first-browser@example.com');
    await server.users.create({ email: 'second-user@example.com', password: PASSWORD, emailVerified: true });
    await server.accounts.requestMagicLink('second-user@example.com', {});
    const switching = await useLink(agent, await linkFor('second-user@example.com'));
    // The provider first ends the other account's session, with a page that submits itself.
    expect(switching.html).toContain('/o/session/end/confirm');
    const account = await agent.submit(switching, '/o/session/end/confirm');
    expect(account.url).toBe(url('/account'));
    expect(account.html).toContain('Signed in as <strong>second-user@example.com</strong>');
    // A fresh sign-in in this browser asks for credentials: the link's sign-in was used up.
    const again = await agent.navigate(url('/account/login?prompt=login'));
    expectPage(again, 200, 'name="password"');
  });

  it('opened in another browser than the one that asked, says so and signs in that browser\'s account pages only', async () => {
    await server.users.create({ email: 'two-browsers@example.com', password: PASSWORD, emailVerified: true });
    const asking = createUserAgent();
    const login = await asking.navigate(url('/account'));
    expect(login.url).toMatch(/\/interaction\/[^/]+$/);
    expectPage(await asking.submit(login, /\/magic-link$/, { email: 'two-browsers@example.com' }), 200, 'we sent it a sign-in link');

    const other = createUserAgent();
    const there = await useLink(other, await linkFor('two-browsers@example.com'));
    expectPage(there, 400, 'Open the link in the browser that asked for it', 'href="/account/login?prompt=login"');
    const account = await other.navigate(url('/account/login?prompt=login'));
    expect(account.url).toBe(url('/account'));
    expect(account.html).toContain('Signed in as <strong>two-browsers@example.com</strong>');
  });
});

describe('/account forms', () => {
  it('re-renders with a visible message and a 4xx for every kind of mistake, changing nothing', async () => {
    const { agent, account } = await signedInAgent('forms@example.com');
    expectLabelledInputs(account.html);
    const badUsername = await agent.submit(account, '/account/profile', { email: 'forms@example.com', username: 'no spaces please', name: 'Kept Name' });
    expectPage(badUsername, 400, 'Use 2 to 64 letters, digits, dots, dashes or underscores.', 'value="Kept Name"');
    const noPassword = await agent.submit(account, '/account/profile', { email: 'elsewhere@example.com' });
    expectPage(noPassword, 400, 'Enter your current password to change your email address.');
    expect(noPassword.html).toMatch(/id="emailPassword"[^>]*aria-invalid="true"/);
    const wrongPassword = await agent.submit(account, '/account/profile', { email: 'elsewhere@example.com', emailPassword: 'not it at all' });
    expectPage(wrongPassword, 400, 'your email address was not changed');
    const takenEmail = await agent.submit(account, '/account/profile', { email: 'ada@example.com', emailPassword: PASSWORD });
    expectPage(takenEmail, 409, 'An account with this email already exists');
    const badEmail = await agent.submit(account, '/account/profile', { email: '' });
    expectPage(badEmail, 400, 'Enter a valid email address.');

    const wrongCurrent = await agent.submit(account, '/account/password', { currentPassword: 'not it at all', newPassword: STRONG });
    expectPage(wrongCurrent, 400, 'The current password is not correct.');
    const weak = await agent.submit(account, '/account/password', { currentPassword: PASSWORD, newPassword: 'password1' });
    expectPage(weak, 400, 'too easy to guess');
    expect(weak.html).toMatch(/id="newPassword"[^>]*aria-invalid="true"/);

    const noDeletePassword = await agent.submit(account, '/account/delete');
    expectPage(noDeletePassword, 400, 'Enter your current password to delete your account.');
    expect(noDeletePassword.html).toMatch(/id="deletePassword"[^>]*aria-invalid="true"/);
    const wrongDelete = await agent.submit(account, '/account/delete', { password: 'nope nope nope' });
    expectPage(wrongDelete, 400, 'The password is not correct; your account was not deleted.');

    const user = (await server.users.findByLogin('forms@example.com'))!;
    expect(user).toMatchObject({ username: null, name: null, email: 'forms@example.com' });
    const again = await agent.navigate(url('/account'));
    expect(again.status).toBe(200);
  });

  it('moves the account to a new address only when the link mailed there is followed, then tells the old one', async () => {
    const { agent, account } = await signedInAgent('mover@example.com');
    const asked = await agent.submit(account, '/account/profile', { email: 'mover.new@example.com', emailPassword: PASSWORD });
    expectPage(asked, 200, 'keeps mover@example.com until then', 'Waiting for confirmation: <strong>mover.new@example.com</strong>', 'Signed in as <strong>mover@example.com</strong>');
    expect(await server.users.findByLogin('mover.new@example.com')).toBeNull();

    const mail = await smtp.waitFor('mover.new@example.com', (m) => m.subject.includes('Confirm the new email address'));
    const other = createUserAgent();
    const confirm = await other.navigate(url(`/verify-email?token=${tokenOf(mail.link)}`));
    expectPage(confirm, 200, 'Confirm that mover.new@example.com is your address, and move your account to it.');
    expect((await server.users.findByLogin('mover@example.com'))?.email).toBe('mover@example.com');
    expectPage(await other.submit(confirm, '/verify-email'), 200, 'email address is now mover.new@example.com');
    expect(await server.users.findByLogin('mover.new@example.com')).toMatchObject({ email: 'mover.new@example.com', emailVerified: true });
    expect((await smtp.waitFor('mover@example.com', (m) => m.subject.includes('email address of your'))).text).toContain('was changed to mover.new@example.com');
    const after = await agent.navigate(url('/account'));
    expectPage(after, 200, 'Signed in as <strong>mover.new@example.com</strong>', 'Email address changed');
    expect(after.html).not.toContain('Waiting for confirmation');
  });

  it('deletes the account with the right password, resends verification only when unverified', async () => {
    const { agent, account } = await signedInAgent('leaving@example.com');
    expect(account.html).not.toContain('/account/verification');
    await server.prisma.user.update({ where: { emailNormalized: 'leaving@example.com' }, data: { emailVerified: false } });
    const unverified = await agent.navigate(url('/account'));
    const resent = await agent.submit(unverified, '/account/verification');
    expect(resent.html).toContain('We sent a new confirmation link to leaving@example.com.');
    expect((await smtp.waitFor('leaving@example.com')).subject).toContain('Confirm your email');

    const deleted = await agent.submit(resent, '/account/delete', { password: PASSWORD });
    expectPage(deleted, 200, 'Account deleted');
    expect(await server.users.findByLogin('leaving@example.com')).toBeNull();
    expect((await agent.navigate(url('/account'))).url).toMatch(/\/interaction\/[^/]+$/);
  });

  it('ends a session whose user was disabled behind its back and asks to sign in (no provider 500)', async () => {
    const { agent } = await signedInAgent('disabled@example.com');
    await server.prisma.user.update({ where: { emailNormalized: 'disabled@example.com' }, data: { active: false } });
    const page = await agent.navigate(url('/account'));
    expect(page.status).toBe(200);
    expect(page.url).toMatch(/\/interaction\/[^/]+$/);
    expect(page.html).toContain('Email or username');
  });

  it('refuses a callback whose state is not the one this browser started with', async () => {
    const agent = createUserAgent();
    const start = await agent.request(url('/account/login'));
    expect(start.status).toBe(303);
    const auth = new URL(start.headers.get('location')!);
    expect(auth.href.startsWith(`${server.issuer}/auth?`)).toBe(true);
    expect(Object.fromEntries(auth.searchParams)).toMatchObject({ client_id: 'latch-account', response_type: 'none', redirect_uri: url('/account/callback') });
    const forged = await agent.navigate(url('/account/callback?state=forged'));
    expectPage(forged, 400, 'This sign-in could not be completed');
    // As long in characters as the real one, but not in bytes.
    const again = new URL((await agent.request(url('/account/login'))).headers.get('location')!);
    const sameLength = 'é'.repeat(again.searchParams.get('state')!.length);
    expectPage(await agent.navigate(url(`/account/callback?state=${encodeURIComponent(sameLength)}`)), 400, 'This sign-in could not be completed');
  });

  it('shows no notice for a notice name it does not know, whatever the name', async () => {
    const { agent } = await signedInAgent('notices@example.com');
    for (const name of ['__proto__', '__defineGetter__', 'constructor', 'toString', 'unknown']) {
      const page = await agent.navigate(url(`/account?notice=${name}`));
      expectPage(page, 200, 'notices@example.com');
      expect(page.html).not.toContain('[object');
      expect(page.html).not.toContain('role="status"');
    }
    expectPage(await agent.navigate(url('/account?notice=profile')), 200, 'Your profile is saved.');
  });
});

describe('closed registration', () => {
  let closed: TestServer;
  beforeAll(async () => {
    closed = await startTestServer({ REGISTRATION_OPEN: 'false' });
  });
  afterAll(() => closed?.stop());

  it('answers /register with a 403 page and the login page offers no "Create an account" link', async () => {
    const agent = createUserAgent();
    const page = await agent.navigate(`${closed.url}/register`);
    expectPage(page, 403, 'Registration is closed');
    expect(page.html).not.toContain('name="password"');
    const post = await agent.request(`${closed.url}/register`, { method: 'POST', body: new URLSearchParams({ email: 'x@example.com', password: STRONG }) });
    expect(post.status).toBe(403);
    expect(await closed.users.count()).toBe(0);

    const login = await agent.navigate(`${closed.url}/account`);
    expect(login.html).toContain('Email or username');
    expect(login.html).not.toContain('Create an account');
    expect(login.html).not.toContain('href="/register');
    // ...which the open server's login page has.
    expect((await createUserAgent().navigate(url('/account'))).html).toMatch(/<a href="\/register\?signin=[\w-]+">Create an account<\/a>/);
  });
});
