import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as oidc from 'openid-client';
import { decodeProtectedHeader } from 'jose';
import type { Browser, Page, Response } from 'playwright-core';
import { startTestServer, type TestServer } from '../support/server.js';
import { PASSWORD, POST_LOGOUT_URI, REDIRECT_URI, authorizationRequest, relyingParty, seed } from '../support/oidc.js';
import { launchChromium, openBrowser } from '../support/browser.js';

/**
 * The login and consent pages in a real browser (Debian's chromium driven by playwright-core).
 * The relying party's redirect_uri points at a closed port: the test records the browser's request
 * to it (see openBrowser in test/support/browser.ts) and plays the RP with openid-client. Set
 * LATCH_E2E_SCREENSHOT=<file.png> to save a screenshot of the login page.
 */

let server: TestServer;
let fixtures: Awaited<ReturnType<typeof seed>>;
let browser: Browser;

beforeAll(async () => {
  [server, browser] = await Promise.all([startTestServer(), launchChromium()]);
  fixtures = await seed(server);
});
afterAll(async () => {
  await browser?.close();
  await server?.stop();
});

async function startAuthorization(page: Page) {
  const rp = await relyingParty(server, fixtures.confidential);
  const request = await authorizationRequest(rp);
  const response = await page.goto(request.url);
  return { rp, request, response: response! };
}

async function signInWith(page: Page, login: string, password: string) {
  await page.getByLabel('Email or username').fill(login);
  await page.getByLabel('Password').fill(password);
  const [response] = await Promise.all([
    page.waitForResponse((r) => r.request().method() === 'POST' && new URL(r.url()).pathname.endsWith('/login')),
    page.getByRole('button', { name: 'Sign in' }).click(),
  ]);
  return response;
}

/** Asserts a form POST's status; on a mismatch the message carries the page's alert, if any. */
async function expectStatus(page: Page, response: Response, status: number) {
  if (response.status() === status) return;
  await page.waitForLoadState();
  const alert = page.getByRole('alert');
  const text = (await alert.count()) ? await alert.first().textContent() : '(no alert on the page)';
  const what = `${response.request().method()} ${new URL(response.url()).pathname} answered ${response.status()}: ${text}`;
  expect(response.status(), what).toBe(status);
}

/** Every <form> on the page carries a non-empty hidden _csrf field. */
async function expectCsrfOnEveryForm(page: Page) {
  const forms = page.locator('form');
  const count = await forms.count();
  expect(count).toBeGreaterThan(0);
  for (let i = 0; i < count; i += 1) {
    const csrf = forms.nth(i).locator('input[type="hidden"][name="_csrf"]');
    await expect.poll(() => csrf.count()).toBe(1);
    expect(await csrf.getAttribute('value')).toMatch(/\S{10,}/);
  }
}

async function expectConsentPage(page: Page) {
  await page.waitForURL(/\/interaction\/[^/]+$/);
  await expect.poll(() => page.getByRole('heading', { level: 1 }).textContent()).toBe('Allow access?');
  expect(await page.locator('.lead strong').textContent()).toBe('Notes');
  const permissions = await page.locator('ul.scopes > li').allTextContents();
  expect(permissions).toEqual([
    'Know who you are (your account identifier)',
    'See your name and username',
    'See your email address and whether it is verified',
  ]);
  expect(await page.getByText('Signed in as').textContent()).toContain('Ada@Example.com');
}

describe('login and consent in a browser', () => {
  for (const javaScriptEnabled of [true, false]) {
    it(`signs in, allows, and the RP gets a valid RS256 ID token (JavaScript ${javaScriptEnabled ? 'on' : 'off'})`, async () => {
      const { context, page, callback } = await openBrowser(browser, { javaScriptEnabled });
      try {
        const { rp, request, response } = await startAuthorization(page);

        // The login page: a strict CSP, CSRF tokens in its forms, the client's name.
        expect(response.status()).toBe(200);
        expect(new URL(page.url()).pathname).toMatch(/^\/interaction\/[^/]+$/);
        const headers = await response.allHeaders();
        expect(headers['content-security-policy']).toContain("default-src 'self'");
        expect(headers['content-security-policy']).toContain("frame-ancestors 'none'");
        expect(await page.getByRole('heading', { level: 1 }).textContent()).toBe('Sign in');
        expect(await page.locator('.lead strong').textContent()).toBe('Notes');
        await expectCsrfOnEveryForm(page);
        if (javaScriptEnabled && process.env.LATCH_E2E_SCREENSHOT) {
          await page.screenshot({ path: process.env.LATCH_E2E_SCREENSHOT, fullPage: true });
        }

        const login = await signInWith(page, 'ada@example.com', PASSWORD);
        await expectStatus(page, login, 303);

        await expectConsentPage(page);
        await expectCsrfOnEveryForm(page);
        await page.getByRole('button', { name: 'Allow' }).click();

        const callbackUrl = await callback();
        expect(callbackUrl.searchParams.get('state')).toBe(request.state);
        expect(callbackUrl.searchParams.get('code')).toBeTruthy();

        const tokens = await oidc.authorizationCodeGrant(rp, callbackUrl, {
          pkceCodeVerifier: request.verifier,
          expectedState: request.state,
          expectedNonce: request.nonce,
          idTokenExpected: true,
        });
        const claims = tokens.claims()!;
        expect(claims.iss).toBe(server.issuer);
        expect(claims.aud).toBe(fixtures.confidential.clientId);
        expect(claims.sub).toBe(fixtures.user.id);
        expect(claims.nonce).toBe(request.nonce);
        expect(decodeProtectedHeader(tokens.id_token!).alg).toBe('RS256');
      } finally {
        await context.close();
      }
    });
  }

  it('shows an error for a wrong password (401), keeps the form usable, then signs in', async () => {
    const { context, page, callback } = await openBrowser(browser);
    try {
      const { rp, request } = await startAuthorization(page);

      const failed = await signInWith(page, 'ada', 'not the password');
      await expectStatus(page, failed, 401);
      const alert = page.getByRole('alert');
      await expect.poll(() => alert.textContent()).toBe('The email, username or password is not correct.');
      // Still the login form, the login kept, the password cleared, a fresh CSRF token.
      expect(await page.getByLabel('Email or username').inputValue()).toBe('ada');
      expect(await page.getByLabel('Password').inputValue()).toBe('');
      await expectCsrfOnEveryForm(page);

      const ok = await signInWith(page, 'ada', PASSWORD);
      await expectStatus(page, ok, 303);
      await expectConsentPage(page);
      expect(await page.getByRole('alert').count()).toBe(0);
      await page.getByRole('button', { name: 'Allow' }).click();

      const tokens = await oidc.authorizationCodeGrant(rp, await callback(), {
        pkceCodeVerifier: request.verifier,
        expectedState: request.state,
        expectedNonce: request.nonce,
        idTokenExpected: true,
      });
      expect(tokens.claims()!.sub).toBe(fixtures.user.id);
    } finally {
      await context.close();
    }
  });

  it('answers with response_mode=form_post: the page posts the code to the RP under the strict CSP', async () => {
    const { context, page } = await openBrowser(browser);
    try {
      const posts: URLSearchParams[] = [];
      context.on('request', (r) => {
        if (r.method() === 'POST' && r.url().startsWith(REDIRECT_URI)) posts.push(new URLSearchParams(r.postData() ?? ''));
      });
      const blocked: string[] = [];
      page.on('console', (m) => {
        if (m.type() === 'error' && m.text().includes('Content Security Policy')) blocked.push(m.text());
      });
      const rp = await relyingParty(server, fixtures.confidential);
      const request = await authorizationRequest(rp, { response_mode: 'form_post' });
      await page.goto(request.url);
      await expectStatus(page, await signInWith(page, 'ada@example.com', PASSWORD), 303);
      await expectConsentPage(page);
      await page.getByRole('button', { name: 'Allow' }).click();

      await expect.poll(() => posts.length, { timeout: 10_000 }).toBe(1);
      expect(posts[0]!.get('state')).toBe(request.state);
      expect(posts[0]!.get('code')).toBeTruthy();
      expect(blocked).toEqual([]);
    } finally {
      await context.close();
    }
  });

  it('signs out of an app without a Latch session and returns to the app, under the strict CSP', async () => {
    const { context, page } = await openBrowser(browser);
    try {
      const returned: string[] = [];
      context.on('request', (r) => {
        if (r.url().startsWith(POST_LOGOUT_URI)) returned.push(r.url());
      });
      const blocked: string[] = [];
      page.on('console', (m) => {
        if (m.type() === 'error' && m.text().includes('Content Security Policy')) blocked.push(m.text());
      });
      // The user already signed out elsewhere (or the session expired): the provider answers with
      // a page whose script sends the browser on.
      const end = new URL(`${server.issuer}/session/end`);
      end.search = new URLSearchParams({ client_id: fixtures.confidential.clientId, post_logout_redirect_uri: POST_LOGOUT_URI, state: 'bye' }).toString();
      await page.goto(end.toString());

      await expect.poll(() => returned.length, { timeout: 10_000 }).toBe(1);
      expect(new URL(returned[0]!).searchParams.get('state')).toBe('bye');
      expect(blocked).toEqual([]);
    } finally {
      await context.close();
    }
  });

  it('returns error=access_denied to the RP when the user clicks Deny', async () => {
    const { context, page, callback } = await openBrowser(browser);
    try {
      const { request } = await startAuthorization(page);
      const login = await signInWith(page, 'ada@example.com', PASSWORD);
      await expectStatus(page, login, 303);
      await expectConsentPage(page);
      await page.getByRole('button', { name: 'Deny' }).click();

      const callbackUrl = await callback();
      expect(callbackUrl.searchParams.get('error')).toBe('access_denied');
      expect(callbackUrl.searchParams.get('state')).toBe(request.state);
      expect(callbackUrl.searchParams.get('code')).toBeNull();
    } finally {
      await context.close();
    }
  });
});
