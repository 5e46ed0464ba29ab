import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import * as oidc from 'openid-client';
import type { Browser, Page } from 'playwright-core';
import { startServerWithMail, type TestServer } from '../support/server.js';
import type { SmtpSink } from '../support/smtp-sink.js';
import { PASSWORD, authorizationRequest, relyingParty, seed } from '../support/oidc.js';
import { launchChromium, openBrowser } from '../support/browser.js';

/**
 * Registration, password reset, magic links and /account in a real browser (Debian's chromium via
 * playwright-core), with mail delivered over SMTP to a sink in this process. Set
 * LATCH_E2E_SCREENSHOT_DIR=<dir> to save register.png and account.png there.
 */

const SCREENSHOTS = process.env.LATCH_E2E_SCREENSHOT_DIR;

const NEW_PASSWORD = 'sunny plains garage 7';

let server: TestServer;
let smtp: SmtpSink;
let stop: () => Promise<void>;
let fixtures: Awaited<ReturnType<typeof seed>>;
let browser: Browser;

beforeAll(async () => {
  [{ server, smtp, stop }, browser] = await Promise.all([startServerWithMail(), launchChromium()]);
  fixtures = await seed(server);
});
afterAll(async () => {
  await browser?.close();
  await stop?.();
});

const heading = (page: Page) => page.getByRole('heading', { level: 1 }).textContent();
const alertText = (page: Page) => page.getByRole('alert').textContent();

async function signIn(page: Page, login: string, password: string) {
  await page.waitForURL(/\/interaction\/[^/]+(\/login)?$/);
  await page.getByLabel('Email or username').fill(login);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

/** Opens /account, signs in on the login page it leads to, and waits to be back on /account. */
async function signInToAccount(page: Page, login: string, password: string) {
  await page.goto(`${server.url}/account`);
  await signIn(page, login, password);
  await page.waitForURL(`${server.url}/account`);
  await expect.poll(() => heading(page)).toBe('Your account');
}

describe('account pages in a browser', () => {
  it('registers through /register, then confirms the address from the emailed link (JavaScript off)', async () => {
    const { context, page } = await openBrowser(browser, { javaScriptEnabled: false });
    try {
      await page.goto(`${server.url}/register`);
      expect(await heading(page)).toBe('Create an account');
      if (SCREENSHOTS) await page.screenshot({ path: join(SCREENSHOTS, 'register.png'), fullPage: true });
      await page.getByLabel('Email').fill('Marie@Example.com');
      await page.getByLabel('Username').fill('marie');
      await page.getByLabel('Full name').fill('Marie Curie');
      await page.getByLabel('Password', { exact: true }).fill('violet kettle orbit 42');
      await page.getByRole('button', { name: 'Create account' }).click();
      await expect.poll(() => heading(page)).toBe('Check your inbox');

      const mail = await smtp.waitFor('marie@example.com', (m) => m.subject.includes('Confirm your email'));
      const user = (await server.users.findByLogin('marie'))!;
      expect(user).toMatchObject({ email: 'Marie@Example.com', name: 'Marie Curie', emailVerified: false });

      await page.goto(mail.link!);
      expect(await heading(page)).toBe('Confirm your email address');
      // Opening the link confirmed nothing yet: a mail scanner's GET must not use it.
      expect((await server.users.findById(user.id))!.emailVerified).toBe(false);
      await page.getByRole('button', { name: 'Confirm email address' }).click();
      await expect.poll(() => heading(page)).toBe('Email address confirmed');
      expect((await server.users.findById(user.id))!.emailVerified).toBe(true);
    } finally {
      await context.close();
    }
  });

  it('resets a forgotten password from the emailed link; then the new password signs in at /account and the old does not', async () => {
    await server.users.create({ email: 'forgetful@example.com', password: PASSWORD, emailVerified: true });
    const { context, page } = await openBrowser(browser);
    try {
      await page.goto(`${server.url}/forgot-password`);
      await page.getByLabel('Email address').fill('forgetful@example.com');
      await page.getByRole('button', { name: 'Send me a link' }).click();
      await expect.poll(() => page.getByRole('status').textContent()).toContain('If an account exists for this address, we sent it a link');

      const mail = await smtp.waitFor('forgetful@example.com', (m) => m.subject.includes('Reset'));
      await page.goto(mail.link!);
      expect(await heading(page)).toBe('Choose a new password');
      await page.getByLabel('New password').fill(NEW_PASSWORD);
      await page.getByRole('button', { name: 'Set new password' }).click();
      await expect.poll(() => heading(page)).toBe('Password changed — sign in again');

      await page.getByRole('link', { name: 'Sign in' }).click();
      await signIn(page, 'forgetful@example.com', PASSWORD);
      await expect.poll(() => alertText(page)).toBe('The email, username or password is not correct.');
      await signIn(page, 'forgetful@example.com', NEW_PASSWORD);
      await page.waitForURL(`${server.url}/account`);
      expect(await page.getByText('Signed in as').textContent()).toContain('forgetful@example.com');
    } finally {
      await context.close();
    }
  });

  it('signs in to a client with a magic link asked for on its login page and opened in the same browser', async () => {
    const user = await server.users.create({ email: 'linky@example.com', password: PASSWORD, emailVerified: true });
    const { context, page, callback } = await openBrowser(browser);
    try {
      const rp = await relyingParty(server, fixtures.trusted);
      const request = await authorizationRequest(rp);
      await page.goto(request.url);
      await page.waitForURL(/\/interaction\/[^/]+$/);
      await page.getByText('Email me a sign-in link instead').click();
      await page.getByLabel('Email address').fill('linky@example.com');
      await page.getByRole('button', { name: 'Email me a sign-in link' }).click();
      await expect.poll(() => page.getByRole('status').textContent()).toContain('we sent it a sign-in link');

      const mail = await smtp.waitFor('linky@example.com', (m) => m.subject.includes('sign-in link'));
      await page.goto(mail.link!);
      expect(await heading(page)).toBe('Sign in to Latch');
      await page.getByRole('button', { name: 'Sign in' }).click();

      const callbackUrl = await callback();
      expect(callbackUrl.searchParams.get('state')).toBe(request.state);
      const tokens = await oidc.authorizationCodeGrant(rp, callbackUrl, {
        pkceCodeVerifier: request.verifier,
        expectedState: request.state,
        expectedNonce: request.nonce,
        idTokenExpected: true,
      });
      expect(tokens.claims()!.sub).toBe(user.id);
    } finally {
      await context.close();
    }
  });

  it('/account: signs in through the login page, edits the name, changes the password (other sessions end), lists activity, signs out', async () => {
    const here = await openBrowser(browser);
    const elsewhere = await openBrowser(browser);
    try {
      const { page } = here;
      await signInToAccount(page, 'ada', PASSWORD);
      await signInToAccount(elsewhere.page, 'ada@example.com', PASSWORD);
      const apiLogin = await fetch(`${server.url}/api/auth/login`, { method: 'POST', body: new URLSearchParams({ username: 'ada', password: PASSWORD }) });
      const { refresh_token } = (await apiLogin.json()) as { refresh_token: string };

      await page.getByLabel('Given name').fill('Augusta');
      await page.getByLabel('Full name').fill('Augusta Ada King');
      await page.getByRole('button', { name: 'Save profile' }).click();
      await expect.poll(() => page.getByRole('status').textContent()).toBe('Your profile is saved.');
      expect(await page.getByLabel('Full name').inputValue()).toBe('Augusta Ada King');
      expect(await server.users.findById(fixtures.user.id)).toMatchObject({ givenName: 'Augusta', name: 'Augusta Ada King', familyName: 'Lovelace' });

      await page.getByLabel('Current password').fill(PASSWORD);
      await page.getByLabel('New password').fill(NEW_PASSWORD);
      await page.getByRole('button', { name: 'Change password' }).click();
      await expect.poll(() => page.getByRole('status').textContent()).toContain('Your password is changed');

      // This browser stays signed in; the other browser and the API session were signed out.
      await page.goto(`${server.url}/account`);
      expect(page.url()).toBe(`${server.url}/account`);
      expect(await heading(page)).toBe('Your account');
      await elsewhere.page.goto(`${server.url}/account`);
      await elsewhere.page.waitForURL(/\/interaction\/[^/]+$/);
      const refresh = await fetch(`${server.url}/api/auth/refresh`, { method: 'POST', body: JSON.stringify({ refresh_token }), headers: { 'content-type': 'application/json' } });
      expect(refresh.status).toBe(400);

      const activity = await page.locator('ul.activity > li strong').allTextContents();
      expect(activity.slice(0, 3)).toEqual(['Password changed', 'Profile updated', 'Signed in']);
      expect(activity.filter((a) => a === 'Signed in').length).toBeGreaterThanOrEqual(2);
      if (SCREENSHOTS) await page.screenshot({ path: join(SCREENSHOTS, 'account.png'), fullPage: true });

      await page.getByRole('link', { name: 'Sign out' }).click();
      await page.getByRole('button', { name: 'Sign out' }).click();
      await page.waitForURL(/\/interaction\/[^/]+$/);
      await signIn(page, 'ada', NEW_PASSWORD);
      await page.waitForURL(`${server.url}/account`);
    } finally {
      await here.context.close();
      await elsewhere.context.close();
    }
  });
});
