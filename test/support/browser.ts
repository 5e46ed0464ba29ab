import { expect } from 'vitest';
import { chromium, type Browser, type BrowserContext } from 'playwright-core';
import { REDIRECT_URI } from './oidc.js';

// Debian's chromium (or CHROMIUM_PATH), driven by playwright-core.
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** A headless chromium for the end-to-end tests; close it in afterAll. */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
}

/**
 * A fresh browser (no cookies) that records its trips to the RP's redirect_uri.
 *
 * The trip back to the RP is the last hop of a redirect chain (POST /interaction/…/confirm → 303
 * /o/auth/… → 303 redirect_uri), and Playwright's page.route()/context.route() never see redirect
 * hops (by design: microsoft/playwright#2617), so they cannot fulfil it. Chromium also refuses
 * port 9 outright (net::ERR_UNSAFE_PORT). The `request` event does fire for every hop, so the
 * callback URL is read from it; the navigation itself then fails harmlessly, as no RP listens.
 */
export async function openBrowser(browser: Browser, options: { javaScriptEnabled?: boolean } = {}) {
  const context: BrowserContext = await browser.newContext({ javaScriptEnabled: options.javaScriptEnabled ?? true });
  // Fail on a missing element or URL well before the 30 s test timeout, with Playwright's message.
  context.setDefaultTimeout(10_000);
  const callbacks: string[] = [];
  context.on('request', (request) => {
    if (request.url().startsWith(REDIRECT_URI)) callbacks.push(request.url());
  });
  const page = await context.newPage();
  /** Resolves with the callback URL once the browser has been sent back to the RP. */
  async function callback(): Promise<URL> {
    await expect.poll(() => callbacks.length, { timeout: 10_000 }).toBe(1);
    return new URL(callbacks[0]!);
  }
  return { context, page, callbacks, callback };
}
