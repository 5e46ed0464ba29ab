import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { startTestServer, type TestServer } from '../support/server.js';
import { PASSWORD, authorizationRequest, relyingParty, seed } from '../support/oidc.js';
import { launchChromium } from '../support/browser.js';

/** The pages on a phone-sized screen, and what a failed form tells a person who cannot see it. */

let server: TestServer;
let fixtures: Awaited<ReturnType<typeof seed>>;
let browser: Browser;
const LONG = 'a.rather.long.address.that.keeps.going.and.going@subdomain.example.com';

beforeAll(async () => {
  [server, browser] = await Promise.all([startTestServer(), launchChromium()]);
  fixtures = await seed(server);
  await server.users.create({ email: LONG, password: PASSWORD, emailVerified: true, isAdmin: true, isStaff: true });
});
afterAll(async () => {
  await browser?.close();
  await server?.stop();
});

async function phone() {
  const context = await browser.newContext({ viewport: { width: 375, height: 740 } });
  context.setDefaultTimeout(10_000);
  return { context, page: await context.newPage() };
}
const pageWidth = (page: Page) => page.evaluate(() => document.documentElement.scrollWidth);

async function signIn(page: Page, login: string, password: string) {
  await page.getByLabel('Email or username').fill(login);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

describe('on a 375-pixel screen', () => {
  it('no page scrolls sideways, however long the address or wide the table', async () => {
    const { context, page } = await phone();
    try {
      await page.goto((await authorizationRequest(await relyingParty(server, fixtures.confidential))).url);
      expect(await pageWidth(page)).toBeLessThanOrEqual(375);
      await signIn(page, LONG, PASSWORD);
      await page.getByRole('button', { name: 'Allow' }).waitFor();
      expect(await pageWidth(page), 'consent').toBeLessThanOrEqual(375);
      for (const path of ['/account', '/admin/users', '/admin/apps', '/admin/sessions', '/admin/audit', '/admin/connections']) {
        await page.goto(`${server.url}${path}`);
        if (page.url().includes('/interaction/')) await signIn(page, LONG, PASSWORD);
        expect(await pageWidth(page), path).toBeLessThanOrEqual(375);
      }
    } finally {
      await context.close();
    }
  });

  it('says a form failed in the title, and on the account page at the top, with a link to the message', async () => {
    const { context, page } = await phone();
    try {
      await page.goto((await authorizationRequest(await relyingParty(server, fixtures.confidential))).url);
      await signIn(page, 'ada', 'not the password');
      await expect.poll(() => page.title()).toMatch(/^Error: Sign in/);

      await page.goto(`${server.url}/account`);
      await signIn(page, 'ada', PASSWORD);
      await page.waitForURL(`${server.url}/account`);
      await page.locator('#currentPassword').fill('not the password');
      await page.locator('#newPassword').fill('violet harbour lantern 4');
      await page.getByRole('button', { name: 'Change password' }).click();
      await expect.poll(() => page.title()).toMatch(/^Error: /);
      const summary = page.getByRole('alert').filter({ hasText: 'That did not work' });
      await expect.poll(() => summary.isVisible()).toBe(true);
      expect(await summary.getByRole('link').getAttribute('href')).toBe('#password-heading');
    } finally {
      await context.close();
    }
  });

  it('answers an unknown address with a page of the site, not bare text', async () => {
    const { context, page } = await phone();
    try {
      const res = await page.goto(`${server.url}/no-such-page`);
      expect(res!.status()).toBe(404);
      expect(await page.title()).toMatch(/Latch/);
      expect(await page.getByRole('heading', { level: 1 }).textContent()).toBe('Not found');
      expect(await page.locator('html').getAttribute('lang')).toBe('en');
    } finally {
      await context.close();
    }
  });
});
