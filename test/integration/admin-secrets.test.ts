import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../support/server.js';
import { PASSWORD } from '../support/oidc.js';
import { createUserAgent, findForm, type Page } from '../support/user-agent.js';

/**
 * New client secrets and API keys in the admin console: the form that makes one redirects to a
 * page that shows it once (Post/Redirect/Get), so reloading that page neither shows it again nor
 * makes another. Over plain HTTP, with a second instance on the same database.
 */

let server: TestServer;

beforeAll(async () => {
  server = await startTestServer();
  for (const login of ['root', 'other']) {
    await server.users.create({ email: `${login}@example.com`, username: login, password: PASSWORD, isAdmin: true, isStaff: true, emailVerified: true });
  }
});
afterAll(() => server?.stop());

const url = (path: string) => `${server.url}${path}`;
type Agent = ReturnType<typeof createUserAgent>;

/** A browser-like agent signed in to the console. */
async function signedIn(login: string) {
  const agent = createUserAgent();
  const loginPage = await agent.navigate(url('/admin'));
  const page = await agent.submit(loginPage, '/login', { login, password: PASSWORD });
  expect(page.url).toBe(url('/admin'));
  return agent;
}

/** Submits a form of `from` and returns the answer itself, not where it redirects. */
function postOnly(agent: Agent, from: Page, action: string, values: Record<string, string> = {}) {
  const body = new URLSearchParams({ ...findForm(from.html, action).hidden, ...values });
  return agent.request(url(action), { method: 'POST', body, headers: { 'content-type': 'application/x-www-form-urlencoded' } });
}

const secretOf = (page: Page) => /<code class="secret" id="secret">([^<]+)<\/code>/.exec(page.html)?.[1];
const digestOf = async (clientId: string) => ((await server.prisma.client.findUnique({ where: { clientId } }))!.metadata as { client_secret?: string }).client_secret;
const events = async (event: string) => (await server.audit.search({ event, page: 1, pageSize: 1 })).total;

/** Whether a client-credentials request with this secret succeeds at the token endpoint. */
async function works(clientId: string, secret: string) {
  const res = await fetch(`${server.issuer}/token`, {
    method: 'POST',
    body: new URLSearchParams({ grant_type: 'client_credentials' }),
    headers: { authorization: `Basic ${Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(secret)}`).toString('base64')}` },
  });
  return res.status === 200;
}

/** Registers a confidential app; returns the redirect to its secret page. */
async function register(agent: Agent, name: string) {
  const list = await agent.navigate(url('/admin/apps'));
  const res = await postOnly(agent, list, '/admin/apps', { name, grantTypes: 'client_credentials' });
  expect(res.status).toBe(303);
  const location = res.headers.get('location')!;
  const clientId = decodeURIComponent(/^\/admin\/apps\/([^/?#]+)\/secret$/.exec(location)![1]!);
  return { location, clientId };
}

describe('new secrets and keys', () => {
  it('are shown once, on the page the form redirects to: opening it again shows nothing and makes nothing', async () => {
    const agent = await signedIn('root');
    const { location, clientId } = await register(agent, 'Reload me');
    // A HEAD first (a link checker, a prefetch) does not use up the one showing.
    expect((await agent.request(url(location), { method: 'HEAD' })).status).toBe(200);
    const shown = await agent.navigate(url(location));
    expect(shown.status).toBe(200);
    expect(shown.html).toContain('App registered');
    expect(shown.headers.get('cache-control')).toBe('no-store');
    const first = secretOf(shown)!;
    expect(await works(clientId, first)).toBe(true);
    const again = await agent.navigate(url(location));
    expect(again.status).toBe(200);
    expect(again.html).toContain('has been shown already, has expired');
    expect(again.html).not.toContain(first);
    expect((await server.clients.list()).filter((c) => c.name === 'Reload me')).toHaveLength(1);

    // A rotated secret: the old one stops working once, the page can be opened again safely.
    const appPage = await agent.navigate(url(`/admin/apps/${clientId}`));
    const rotations = await events('admin.app_secret_rotated');
    const rotated = await postOnly(agent, appPage, `/admin/apps/${clientId}/secret`, { confirm: 'on' });
    expect(rotated.status).toBe(303);
    expect(rotated.headers.get('location')).toBe(location);
    const digest = await digestOf(clientId);
    const rotatedPage = await agent.navigate(url(location));
    expect(rotatedPage.html).toContain('New client secret');
    const second = secretOf(rotatedPage)!;
    expect(second).not.toBe(first);
    for (let i = 0; i < 2; i += 1) {
      const reloaded = await agent.navigate(url(location));
      expect(secretOf(reloaded)).toBeUndefined();
      expect(reloaded.html).not.toContain(second);
    }
    expect(await digestOf(clientId)).toBe(digest);
    expect(await events('admin.app_secret_rotated')).toBe(rotations + 1);
    expect(await works(clientId, first)).toBe(false);
    expect(await works(clientId, second)).toBe(true);

    // A new API key, the same way.
    const keyed = await postOnly(agent, appPage, `/admin/apps/${clientId}/api-keys`, { confirm: 'on' });
    expect(keyed.status).toBe(303);
    expect(keyed.headers.get('location')).toBe(location);
    const keyPage = await agent.navigate(url(location));
    expect(keyPage.html).toContain('New API key');
    const key = secretOf(keyPage)!;
    expect(secretOf(await agent.navigate(url(location)))).toBeUndefined();
    expect(await server.prisma.apiKey.count({ where: { clientId } })).toBe(1);
    expect((await fetch(url(`/api/apps/${clientId}`), { headers: { authorization: `Bearer ${key}` } })).status).toBe(200);
    expect(await works(clientId, second)).toBe(true);
  });

  it('are for the admin who made them: a copy of the cookie shows nothing to another, or after the page showed it', async () => {
    const agent = await signedIn('root');
    const { location } = await register(agent, 'Copied');
    const copy = await agent.jar.getCookieString(url(location));
    const held = copy.split('; ').find((c) => c.startsWith('latch.new-secret='))!;
    expect(held).toBeTruthy();

    // Another admin with the same cookie sees nothing, and does not use it up.
    const other = await signedIn('other');
    await other.jar.setCookie(`${held}; Path=${location}`, url(location));
    const theirs = await other.navigate(url(location));
    expect(theirs.status).toBe(200);
    expect(secretOf(theirs)).toBeUndefined();
    const secret = secretOf(await agent.navigate(url(location)))!;
    expect(secret).toBeTruthy();

    // Once shown, replaying the cookie shows it no more.
    const replayed = await fetch(url(location), { headers: { cookie: copy }, redirect: 'manual' });
    expect(replayed.status).toBe(200);
    expect(await replayed.text()).not.toContain(secret);
  });

  it('work across instances on one database: made at one, shown once by another', async () => {
    const second = await startTestServer({ PUBLIC_URL: server.url }, server.config.db.url);
    try {
      const agent = await signedIn('root');
      const { location, clientId } = await register(agent, 'Two instances');
      const copy = await agent.jar.getCookieString(url(location));
      const shown = await agent.navigate(`${second.url}${location}`);
      expect(shown.status).toBe(200);
      const secret = secretOf(shown)!;
      expect(await works(clientId, secret)).toBe(true);
      for (const base of [server.url, second.url]) {
        const replayed = await fetch(`${base}${location}`, { headers: { cookie: copy }, redirect: 'manual' });
        expect(await replayed.text()).not.toContain(secret);
      }
    } finally {
      await second.stop();
    }
  });

  it('made one after another (two apps, two tabs), are each shown on their own page', async () => {
    const agent = await signedIn('root');
    const a = await register(agent, 'First of two');
    const b = await register(agent, 'Second of two');
    for (const { location, clientId } of [a, b]) {
      const secret = secretOf(await agent.navigate(url(location)));
      expect(secret, clientId).toBeTruthy();
      expect(await works(clientId, secret!)).toBe(true);
    }
  });

  it('answer an unknown app with 404, and the page without a held secret with a note', async () => {
    const agent = await signedIn('root');
    expect((await agent.navigate(url('/admin/apps/no-such-app/secret'))).status).toBe(404);
    const page = await agent.navigate(url('/admin/apps/latch-account/secret'));
    expect(page.status).toBe(200);
    expect(page.html).toContain('has been shown already, has expired');
  });
});
