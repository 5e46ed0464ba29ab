import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { startTestServer, type TestServer } from '../support/server.js';
import { PASSWORD, seed } from '../support/oidc.js';
import { launchChromium, openBrowser } from '../support/browser.js';

/**
 * The admin console in a real browser with JavaScript off (Debian's chromium via playwright-core):
 * an admin signs in through /admin, manages users and apps, changes a setting and reads the audit
 * log, and each change is checked where it matters (the API, the token endpoint). Set
 * LATCH_E2E_SCREENSHOT_DIR=<dir> to save admin-users.png and admin-app.png there.
 */

const SCREENSHOTS = process.env.LATCH_E2E_SCREENSHOT_DIR;

let server: TestServer;
let browser: Browser;
let fixtures: Awaited<ReturnType<typeof seed>>;

beforeAll(async () => {
  [server, browser] = await Promise.all([startTestServer(), launchChromium()]);
  fixtures = await seed(server);
  await server.users.create({ email: 'boss@example.com', username: 'boss', name: 'Grace Hopper', password: PASSWORD, isAdmin: true, isStaff: true, emailVerified: true });
});
afterAll(async () => {
  await browser?.close();
  await server?.stop();
});

const heading = (page: Page) => page.getByRole('heading', { level: 1 }).textContent();
const status = (page: Page) => page.getByRole('status').textContent();

async function apiLogin(username: string, password = PASSWORD) {
  const res = await fetch(`${server.url}/api/auth/login`, { method: 'POST', body: new URLSearchParams({ username, password }) });
  return { status: res.status, body: (await res.json()) as { refresh_token?: string; expires_in?: number } };
}

/** A client-credentials request at the token endpoint: the status says whether the secret works. */
async function clientCredentials(clientId: string, secret: string) {
  const res = await fetch(`${server.issuer}/token`, {
    method: 'POST',
    body: new URLSearchParams({ grant_type: 'client_credentials' }),
    headers: { authorization: `Basic ${Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(secret)}`).toString('base64')}` },
  });
  return res.status;
}

/** A fresh browser (no JavaScript) signed in as the admin through /admin and its login page. */
async function signInAsAdmin() {
  const { context, page } = await openBrowser(browser, { javaScriptEnabled: false });
  await page.goto(`${server.url}/admin`);
  await page.waitForURL(/\/interaction\/[^/]+$/);
  await page.getByLabel('Email or username').fill('boss');
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL(`${server.url}/admin`);
  return { context, page };
}

describe('admin console in a browser', () => {
  it('signs in through /admin, searches, creates, edits and disables users (their refresh token stops working)', async () => {
    const { context, page } = await signInAsAdmin();
    try {
      expect(await heading(page)).toBe('Admin console');
      expect(await page.locator('.stats').textContent()).toMatch(/2\s+users/);

      await page.getByRole('link', { name: 'Users', exact: true }).click();
      await page.getByLabel('Search by email, username or name').fill('lovelace');
      await page.getByRole('button', { name: 'Search' }).click();
      await page.waitForURL(`${server.url}/admin/users?search=lovelace`);
      const rows = page.locator('table tbody tr');
      expect(await rows.count()).toBe(1);
      expect(await rows.first().textContent()).toContain('Ada@Example.com');

      // A new user, with a role.
      await page.getByLabel('Email', { exact: true }).fill('linus@example.com');
      await page.getByLabel('Username', { exact: true }).fill('linus');
      await page.getByLabel('Full name').fill('Linus Pauling');
      await page.getByLabel('Initial password').fill('violet kettle orbit 42');
      await page.getByLabel('Developer (may register apps)').check();
      await page.getByRole('button', { name: 'Create user' }).click();
      await expect.poll(() => status(page)).toBe('linus@example.com is created.');
      expect(await server.users.findByLogin('linus')).toMatchObject({ name: 'Linus Pauling', isDeveloper: true, emailVerified: true, isAdmin: false });
      expect((await apiLogin('linus', 'violet kettle orbit 42')).status).toBe(200);

      // Ada: signed in to the API first; edited, then disabled.
      const { body } = await apiLogin('ada');
      expect(body.refresh_token).toBeTruthy();
      await page.goto(`${server.url}/admin/users?search=lovelace`);
      await page.getByRole('link', { name: 'Ada@Example.com' }).click();
      expect(await heading(page)).toBe('Ada@Example.com');
      await page.getByLabel('Full name').fill('Augusta Ada King');
      await page.getByLabel('Staff', { exact: true }).check();
      await page.getByRole('button', { name: 'Save changes' }).click();
      await expect.poll(() => status(page)).toBe('The changes are saved.');
      expect(await server.users.findById(fixtures.user.id)).toMatchObject({ name: 'Augusta Ada King', isStaff: true, active: true });
      if (SCREENSHOTS) await page.screenshot({ path: join(SCREENSHOTS, 'admin-user.png'), fullPage: true });

      await page.getByLabel('Yes, disable Ada@Example.com and sign them out everywhere').check();
      await page.getByRole('button', { name: 'Disable user' }).click();
      await expect.poll(() => status(page)).toBe('Ada@Example.com is disabled and signed out everywhere.');
      expect((await server.users.findById(fixtures.user.id))!.active).toBe(false);
      const refresh = await fetch(`${server.url}/api/auth/refresh`, { method: 'POST', body: JSON.stringify({ refresh_token: body.refresh_token }), headers: { 'content-type': 'application/json' } });
      expect(refresh.status).toBe(400);
      expect((await apiLogin('ada')).status).not.toBe(200);

      await page.getByRole('button', { name: 'Enable user' }).click();
      await expect.poll(() => status(page)).toBe('Ada@Example.com is enabled again.');
      expect((await apiLogin('ada')).status).toBe(200);

      await page.goto(`${server.url}/admin/users`);
      if (SCREENSHOTS) await page.screenshot({ path: join(SCREENSHOTS, 'admin-users.png'), fullPage: true });
    } finally {
      await context.close();
    }
  });

  it('registers an app and shows its secret once; a rotated secret replaces the old one, and a reload rotates nothing', async () => {
    const { context, page } = await signInAsAdmin();
    try {
      await page.getByRole('link', { name: 'Apps', exact: true }).click();
      expect(await page.locator('table').textContent()).toContain('latch-account');
      await page.getByLabel('Name', { exact: true }).fill('Nightly batch');
      await page.getByLabel('Authorization code (users sign in)').uncheck();
      await page.getByLabel('Refresh token').uncheck();
      await page.getByLabel('Client credentials (machine to machine)').check();
      await page.getByLabel('Scopes (space-separated)').fill('');
      await page.getByRole('button', { name: 'Register app' }).click();
      await expect.poll(() => heading(page)).toBe('App registered');
      const clientId = (await page.locator('#client-id').textContent())!;
      const firstSecret = (await page.locator('#secret').textContent())!;
      expect(firstSecret.length).toBeGreaterThan(20);
      expect(await clientCredentials(clientId, firstSecret)).toBe(200);

      await page.getByRole('link', { name: /^Done/ }).click();
      await page.waitForURL(`${server.url}/admin/apps/${clientId}`);
      expect(await heading(page)).toBe('Nightly batch');
      expect(await page.content()).not.toContain(firstSecret);
      if (SCREENSHOTS) await page.screenshot({ path: join(SCREENSHOTS, 'admin-app.png'), fullPage: true });

      await page.getByLabel('Yes, the current secret stops working').check();
      await page.getByRole('button', { name: 'Rotate secret' }).click();
      await expect.poll(() => heading(page)).toBe('New client secret');
      const secondSecret = (await page.locator('#secret').textContent())!;
      expect(secondSecret).not.toBe(firstSecret);
      expect(await clientCredentials(clientId, firstSecret)).toBe(401);
      expect(await clientCredentials(clientId, secondSecret)).toBe(200);
      // Reloading that page neither shows the secret again nor makes another.
      await page.reload();
      expect(await heading(page)).toBe('Shown once only');
      expect(await page.locator('#secret').count()).toBe(0);
      expect(await clientCredentials(clientId, secondSecret)).toBe(200);

      await page.goto(`${server.url}/admin/apps/${clientId}`);
      await page.getByLabel('Yes, earlier keys stop working').check();
      await page.getByRole('button', { name: 'Create API key' }).click();
      await expect.poll(() => heading(page)).toBe('New API key');
      const key = (await page.locator('#secret').textContent())!;
      await page.reload();
      expect(await page.locator('#secret').count()).toBe(0);
      const viaKey = await fetch(`${server.url}/api/apps/${clientId}`, { headers: { authorization: `Bearer ${key}` } });
      expect(viaKey.status).toBe(200);
    } finally {
      await context.close();
    }
  });

  it('changes the access-token lifetime without a restart, and the audit log shows the admin behind each change', async () => {
    const { context, page } = await signInAsAdmin();
    try {
      expect((await apiLogin('boss')).body.expires_in).not.toBe(321);
      await page.getByRole('link', { name: 'Settings', exact: true }).click();
      await page.getByLabel('Access token lifetime (seconds)').fill('321');
      await page.getByRole('button', { name: 'Save settings' }).click();
      await expect.poll(() => status(page)).toContain('The settings are saved');
      expect(await page.getByLabel('Access token lifetime (seconds)').inputValue()).toBe('321');
      expect((await apiLogin('boss')).body.expires_in).toBe(321);

      const boss = (await server.users.findByLogin('boss'))!;
      await page.getByRole('link', { name: 'Audit log', exact: true }).click();
      for (const [event, rows] of [['admin.settings_updated', 1], ['admin.app_secret_rotated', 1], ['admin.user_updated', 3], ['admin.user_created', 1]] as const) {
        await page.getByLabel('Event').selectOption(event);
        await page.getByRole('button', { name: 'Filter' }).click();
        await page.waitForURL(new RegExp(`event=${event.replace('.', '\\.')}`));
        const events = await page.locator('table.audit tbody tr td:nth-child(2)').allTextContents();
        expect(events, event).toEqual(Array(rows).fill(event));
        expect(await page.locator('table.audit tbody tr td.actor').allTextContents(), event).toEqual(Array(rows).fill('boss@example.com'));
      }
      // Filtered by the user acted on, too: Ada's record shows who changed her account.
      await page.getByLabel('User (id, email or username)').fill('ada@example.com');
      await page.getByLabel('Event').selectOption('admin.user_updated');
      await page.getByRole('button', { name: 'Filter' }).click();
      await page.waitForURL(/user=ada/);
      expect(await page.locator('table.audit tbody tr').count()).toBe(3);
      const stored = await server.audit.search({ event: 'admin.settings_updated' });
      expect(stored.items[0]).toMatchObject({ actorId: boss.id, detail: { accessTokenTtl: 321 } });
    } finally {
      await context.close();
    }
  });
});
