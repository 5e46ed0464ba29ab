import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import * as oidc from 'openid-client';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { freePort, startTestServer, type TestServer } from '../support/server.js';
import { authorizationRequest, relyingParty } from '../support/oidc.js';
import { launchChromium, openBrowser } from '../support/browser.js';
import { createUserAgent } from '../support/user-agent.js';
import type { Connection } from '../../src/federation/connections.service.js';

/**
 * "Continue with Company SSO": a second Latch (A) is the upstream `oidc` connection of the Latch
 * under test (B), in a real browser, all on loopback. The RP of B is played by openid-client; its
 * redirect_uri is a closed port, whose request the browser records (see openBrowser).
 *
 * A and B must not share a host name: browsers do not keep cookies apart by port, so on one host
 * A's and B's cookies of the same name and path (oidc-provider's `_session`, `latch.csrf`) would
 * overwrite each other, and the second sign-in could not find A's session. A is on 127.0.0.1 (the
 * test server's default), B on localhost, as two real deployments would be on two hosts.
 */

const B_HOST = 'localhost';
const EMAIL = 'grace@example.com';
const PASSWORD = 'a long upstream passphrase';

let A: TestServer;
let B: TestServer;
let bUrl: string;
let browser: Browser;
let upstreamUser: { id: string };
let upstreamClient: { clientId: string; clientSecret?: string };
let rpClient: { clientId: string; clientSecret?: string };
let connection: Connection;

beforeAll(async () => {
  const portB = await freePort();
  bUrl = `http://${B_HOST}:${portB}`;
  [A, B, browser] = await Promise.all([
    startTestServer(),
    startTestServer({ PORT: String(portB), PUBLIC_URL: bUrl, CONNECTION_SECRET_KEYS: randomBytes(32).toString('base64') }),
    launchChromium(),
  ]);
  expect(B.issuer).toBe(`${bUrl}/o`);

  upstreamUser = await A.users.create({ email: EMAIL, password: PASSWORD, givenName: 'Grace', familyName: 'Hopper', emailVerified: true });
  upstreamClient = await A.clients.create({ name: 'Latch B', redirectUris: [`${bUrl}/callback/company-sso`] });

  rpClient = await B.clients.create({ name: 'Notes', redirectUris: ['http://127.0.0.1:9/callback'] });
  connection = await B.connections.create({
    kind: 'oidc',
    slug: 'company-sso',
    name: 'Company SSO',
    issuer: A.issuer,
    clientId: upstreamClient.clientId,
    clientSecret: upstreamClient.clientSecret,
  });
  await B.connections.offer(rpClient.clientId, connection.id);
});
afterAll(async () => {
  await browser?.close();
  await Promise.all([A?.stop(), B?.stop()]);
});

const origin = (url: string) => new URL(url).origin;
/** An interaction page (login or consent) of the server at `base`. */
const interactionOf = (base: string) => (url: URL) => url.origin === origin(base) && /^\/interaction\/[^/]+$/.test(url.pathname);

/** Every URL the browser requests for a top-level page, redirect hops included. */
function recordNavigations(context: BrowserContext) {
  const urls: string[] = [];
  context.on('request', (request) => {
    if (request.isNavigationRequest()) urls.push(request.url());
  });
  return urls;
}

/** Opens the RP's authorization request at B: B's login page, with the connection's button. */
async function startAtB(page: Page, params: Record<string, string> = {}) {
  const rp = await relyingParty(B, rpClient);
  const request = await authorizationRequest(rp, params);
  const response = await page.goto(request.url);
  expect(response!.status()).toBe(200);
  await page.waitForURL(interactionOf(bUrl));
  expect(await page.getByRole('heading', { level: 1 }).textContent()).toBe('Sign in');
  expect(await page.locator('.lead strong').textContent()).toBe('Notes');
  return { rp, request };
}

async function continueWithCompanySso(page: Page) {
  await page.getByRole('button', { name: 'Continue with Company SSO' }).click();
}

/** A's login form: fill it and sign in. */
async function signInAtA(page: Page, login: string, password: string) {
  await page.waitForURL(interactionOf(A.url));
  expect(await page.getByRole('heading', { level: 1 }).textContent()).toBe('Sign in');
  expect(await page.locator('.lead strong').textContent()).toBe('Latch B');
  await page.getByLabel('Email or username').fill(login);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

/** The consent page of the server at `base`, for `client`, signed in as `email`. */
async function expectConsentAt(page: Page, base: string, client: string, email: string) {
  await page.waitForURL(interactionOf(base));
  await expect.poll(() => page.getByRole('heading', { level: 1 }).textContent()).toBe('Allow access?');
  expect(await page.locator('.lead strong').textContent()).toBe(client);
  expect(await page.getByText('Signed in as').textContent()).toContain(email);
}

async function exchange(rp: oidc.Configuration, request: Awaited<ReturnType<typeof authorizationRequest>>, callbackUrl: URL) {
  expect(callbackUrl.searchParams.get('state')).toBe(request.state);
  expect(callbackUrl.searchParams.get('code')).toBeTruthy();
  const tokens = await oidc.authorizationCodeGrant(rp, callbackUrl, {
    pkceCodeVerifier: request.verifier,
    expectedState: request.state,
    expectedNonce: request.nonce,
    idTokenExpected: true,
  });
  const claims = tokens.claims()!;
  expect(claims.iss).toBe(B.issuer);
  expect(claims.aud).toBe(rpClient.clientId);
  return { tokens, claims };
}

describe('signing in at Latch B through Latch A (an oidc connection) in a browser', () => {
  // One browser for the first two tests: the second finds A's session from the first.
  let shared: Awaited<ReturnType<typeof openBrowser>>;
  afterAll(async () => {
    await shared?.context.close();
  });

  it('creates B\'s user from A\'s account on the first sign-in, and the RP gets an ID token for it', async () => {
    shared = await openBrowser(browser);
    const { page, callback } = shared;
    const { rp, request } = await startAtB(page);

    await continueWithCompanySso(page);
    await signInAtA(page, EMAIL, PASSWORD);
    await expectConsentAt(page, A.url, 'Latch B', EMAIL);
    await page.getByRole('button', { name: 'Allow' }).click();

    // Back through B's /callback/company-sso to B's own consent for the RP.
    await expectConsentAt(page, bUrl, 'Notes', EMAIL);
    await page.getByRole('button', { name: 'Allow' }).click();

    const { tokens, claims } = await exchange(rp, request, await callback());
    const user = await B.users.findByLogin(EMAIL);
    expect(user).toMatchObject({ email: EMAIL, emailVerified: true, givenName: 'Grace', familyName: 'Hopper', name: 'Grace Hopper', passwordHash: null });
    expect(user!.id).not.toBe(upstreamUser.id);
    expect(claims.sub).toBe(user!.id);
    expect(await oidc.fetchUserInfo(rp, tokens.access_token, user!.id)).toMatchObject({ email: EMAIL, email_verified: true, name: 'Grace Hopper' });
    expect(await B.prisma.federatedIdentity.findMany({ where: { userId: user!.id } })).toMatchObject([
      { connectionId: connection.id, subject: upstreamUser.id, email: EMAIL },
    ]);
    expect(await B.users.count()).toBe(1);
  });

  it('signs in again with no form at A (A\'s session and grant) and finds the same user at B', async () => {
    expect(shared, 'runs after the first sign-in, in its browser').toBeDefined();
    const { context, callbacks, callback } = shared;
    // A new tab with the same cookies: the first tab may still be loading its error page for the
    // closed port of the RP's redirect_uri, which would interrupt a navigation there.
    await shared.page.close();
    const page = await context.newPage();
    callbacks.length = 0;
    const navigations = recordNavigations(context);
    const before = await B.users.findByLogin(EMAIL);

    // prompt=login: B asks again (it has its own session too), so the sign-in goes through A.
    const { rp, request } = await startAtB(page, { prompt: 'login' });
    await continueWithCompanySso(page);
    // A answers at once: no login or consent page there; B knows the RP's grant, so no consent either.
    const callbackUrl = await callback();

    expect(navigations.some((u) => u.startsWith(`${A.issuer}/auth`))).toBe(true);
    expect(navigations.some((u) => u.startsWith(`${bUrl}/callback/company-sso?`))).toBe(true);
    expect(navigations.filter((u) => interactionOf(A.url)(new URL(u)))).toEqual([]);

    const { claims } = await exchange(rp, request, callbackUrl);
    expect(claims.sub).toBe(before!.id);
    expect(await B.users.count()).toBe(1);
    expect(await B.prisma.federatedIdentity.count()).toBe(1);
  });

  it('shows a clear page at B when the user denies at A, creates nothing, and the RP gets no code', async () => {
    const denier = await A.users.create({ email: 'linus@example.com', password: PASSWORD, givenName: 'Linus', emailVerified: true });
    const { context, page, callbacks } = await openBrowser(browser);
    const [users, identities] = await Promise.all([B.users.count(), B.prisma.federatedIdentity.count()]);
    try {
      await startAtB(page);
      await continueWithCompanySso(page);
      await signInAtA(page, 'linus@example.com', PASSWORD);
      await expectConsentAt(page, A.url, 'Latch B', 'linus@example.com');

      const [landing] = await Promise.all([
        page.waitForResponse((r) => r.url().startsWith(`${bUrl}/callback/company-sso?`)),
        page.getByRole('button', { name: 'Deny' }).click(),
      ]);
      expect(new URL(landing.url()).searchParams.get('error')).toBe('access_denied');
      expect(landing.status()).toBe(400);
      await page.waitForLoadState();
      expect(await page.getByRole('heading', { level: 1 }).textContent()).toBe('We could not sign you in');
      expect(await page.getByRole('alert').textContent()).toBe('You declined to sign in with Company SSO.');

      // The way back to B's sign-in still works.
      await page.getByRole('link', { name: 'Back to sign in' }).click();
      await page.waitForURL(interactionOf(bUrl));
      await expect.poll(() => page.getByRole('button', { name: 'Continue with Company SSO' }).count()).toBe(1);

      expect(callbacks).toEqual([]);
      expect(await B.users.findByLogin('linus@example.com')).toBeNull();
      expect(await B.prisma.federatedIdentity.count({ where: { subject: denier.id } })).toBe(0);
      expect(await B.users.count()).toBe(users);
      expect(await B.prisma.federatedIdentity.count()).toBe(identities);
      const failures = await B.audit.search({ event: 'federated.failure' });
      expect(failures.items.map((e) => e.detail)).toContainEqual(expect.objectContaining({ connection: 'company-sso', reason: 'denied' }));
    } finally {
      await context.close();
    }
  });
});

describe('an oidc connection whose issuer does not match the discovery document', () => {
  it('refuses to start the sign-in with a readable page, and audits the failure', async () => {
    // A's discovery document, read at localhost, names 127.0.0.1 as the issuer.
    const wrong = await B.connections.create({
      kind: 'oidc',
      slug: 'wrong-issuer',
      name: 'Old SSO',
      issuer: `http://localhost:${new URL(A.url).port}/o`,
      clientId: upstreamClient.clientId,
      clientSecret: upstreamClient.clientSecret,
    });
    await B.connections.offer(rpClient.clientId, wrong.id);

    const rp = await relyingParty(B, rpClient);
    const agent = createUserAgent();
    const login = await agent.navigate((await authorizationRequest(rp)).url);
    expect(login.status).toBe(200);
    expect(login.html).toContain('Continue with Old SSO');
    const users = await B.users.count();
    const failuresBefore = (await B.audit.search({ event: 'federated.failure' })).total;

    const page = await agent.submit(login, '/connection/wrong-issuer');
    expect(page.status).toBeGreaterThanOrEqual(400);
    expect(page.status).toBeLessThanOrEqual(502);
    expect(page.html).toMatch(/<p class="alert" role="alert">Sign-in with Old SSO is not set up correctly \(its issuer does not match\)\. Try again later, or sign in another way\.<\/p>/);
    // Still B's login page, with its other options.
    expect(page.html).toContain('Continue with Company SSO');

    const failures = await B.audit.search({ event: 'federated.failure' });
    expect(failures.total).toBe(failuresBefore + 1);
    expect(failures.items.map((e) => e.detail)).toContainEqual(expect.objectContaining({ connection: 'wrong-issuer', reason: 'issuer_mismatch' }));
    expect(await B.users.count()).toBe(users);
  });
});
