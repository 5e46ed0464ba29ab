import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../support/server.js';
import { PASSWORD } from '../support/oidc.js';
import { createUserAgent, type Page } from '../support/user-agent.js';

/**
 * Linked upstream accounts on /account and /api/me/identities. Identities are written straight to
 * the database: no upstream provider takes part.
 */

let server: TestServer;
let github: { id: string; slug: string };
let google: { id: string };
let seq = 0;

beforeAll(async () => {
  server = await startTestServer();
  github = await server.prisma.connection.create({ data: { slug: 'github', kind: 'github', name: 'GitHub', clientId: 'x', scopes: '' } });
  google = await server.prisma.connection.create({ data: { slug: 'google', kind: 'google', name: 'Google', clientId: 'x', scopes: '' } });
});
afterAll(() => server?.stop());

const url = (path: string) => `${server.url}${path}`;
const LAST_WAY = 'This is your only way to sign in, so it was not removed.';

function expectPage(page: Page, status: number, ...texts: string[]) {
  expect(page.status, page.html.slice(0, 2000)).toBe(status);
  for (const text of texts) expect(page.html).toContain(text);
}

async function newUser(email: string) {
  return server.users.create({ email, password: PASSWORD, emailVerified: true });
}

async function link(userId: string, connection: { id: string }, email: string | null, lastLoginAt: Date | null = null) {
  seq += 1;
  // A second apart, so "oldest first" has one answer even when rows are made in the same millisecond.
  const createdAt = new Date(Date.now() - 3_600_000 + seq * 1000);
  return server.prisma.federatedIdentity.create({ data: { connectionId: connection.id, subject: `subject-${seq}`, userId, email, lastLoginAt, createdAt } });
}

const dropPassword = (userId: string) => server.prisma.user.update({ where: { id: userId }, data: { passwordHash: null } });
const stillThere = async (id: string) => (await server.prisma.federatedIdentity.findUnique({ where: { id } })) !== null;

/** A browser-like agent signed in to /account with the login form. */
async function signedInAgent(email: string) {
  const agent = createUserAgent();
  const login = await agent.navigate(url('/account'));
  const account = await agent.submit(login, '/login', { login: email, password: PASSWORD });
  expectPage(account, 200, 'Your account');
  expect(account.url).toBe(url('/account'));
  return { agent, account };
}

/** Posts the account page's CSRF token to any path, as a forged or stale form would. */
function post(agent: ReturnType<typeof createUserAgent>, from: Page, path: string) {
  const csrf = /name="_csrf" value="([^"]+)"/.exec(from.html)![1]!;
  return agent.navigate(url(path), { method: 'POST', body: new URLSearchParams({ _csrf: csrf }), headers: { 'content-type': 'application/x-www-form-urlencoded' } });
}

const api = (method: string, path: string, token?: string) =>
  fetch(url(`/api${path}`), { method, headers: token ? { authorization: `Bearer ${token}` } : {} });

async function apiToken(email: string) {
  const res = await fetch(url('/api/auth/login'), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: email, password: PASSWORD }) });
  expect(res.status).toBe(200);
  return ((await res.json()) as { access_token: string }).access_token;
}

const unlinkedEvents = (userId: string) => server.prisma.auditEvent.findMany({ where: { userId, event: 'federated.unlinked' } });

describe('/account linked accounts', () => {
  it('lists the linked accounts and removes one, with a notice and an audit event', async () => {
    const user = await newUser('links@example.com');
    const used = new Date('2025-03-04T05:06:00Z');
    const gh = await link(user.id, github, 'octo@users.example', used);
    const gg = await link(user.id, google, null);
    const { agent, account } = await signedInAgent('links@example.com');

    expectPage(account, 200, 'Linked accounts', '<strong>GitHub</strong> · octo@users.example', 'last used <time datetime="2025-03-04T05:06:00.000Z">2025-03-04 05:06 UTC</time>', '<strong>Google</strong>', 'never used');
    expect(account.html).toContain(`action="/account/identities/${gh.id}/remove"`);
    expect(account.html).toContain(`action="/account/identities/${gg.id}/remove"`);

    const done = await agent.submit(account, `/account/identities/${gh.id}/remove`);
    expect(done.url).toBe(url('/account?notice=unlinked'));
    expectPage(done, 200, 'The linked account is removed.', 'Removed a linked account', '<strong>Google</strong>');
    expect(done.html).not.toContain('octo@users.example');
    expect(await stillThere(gh.id)).toBe(false);
    expect(await stillThere(gg.id)).toBe(true);
    const events = await unlinkedEvents(user.id);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ detail: { connectionId: github.id }, ip: expect.stringMatching(/127\.0\.0\.1/) });

    // Removing it again (a second tab): a message, not an error page.
    const again = await agent.submit(account, `/account/identities/${gh.id}/remove`);
    expectPage(again, 404, 'This linked account does not exist; it may already be removed.');
  });

  it('says so when nothing is linked', async () => {
    await newUser('nolinks@example.com');
    const { account } = await signedInAgent('nolinks@example.com');
    expectPage(account, 200, 'Linked accounts', 'No accounts from other providers are linked.');
    expect(account.html).not.toContain('/account/identities/');
  });

  it('refuses to remove the last way to sign in (409, it stays), but removes one of two', async () => {
    const user = await newUser('only-github@example.com');
    const only = await link(user.id, github, 'only@users.example');
    const { agent } = await signedInAgent('only-github@example.com');
    await dropPassword(user.id);

    // No password: the page still works, and says how to get one instead of asking for it.
    const account = await agent.navigate(url('/account'));
    expectPage(account, 200, 'Your account has no password', 'href="/forgot-password"', '<strong>GitHub</strong>');
    expect(account.html).not.toContain('id="currentPassword"');
    expect(account.html).not.toContain('id="deletePassword"');
    expect(account.html).not.toContain('id="emailPassword"');
    // Signed in moments ago, it may ask for a new email without one; the account keeps its
    // address until the link mailed to the new one is followed.
    const moved = await agent.submit(account, '/account/profile', { email: 'only-github-new@example.com' });
    expect(moved.url).toBe(url('/account?notice=email'));
    expectPage(moved, 200, 'keeps only-github@example.com until then', 'Waiting for confirmation: <strong>only-github-new@example.com</strong>');
    expect((await server.users.findById(user.id))?.email).toBe('only-github@example.com');

    const refused = await agent.submit(account, `/account/identities/${only.id}/remove`);
    expectPage(refused, 409, LAST_WAY, '<strong>GitHub</strong>');
    expect(await stillThere(only.id)).toBe(true);
    expect(await unlinkedEvents(user.id)).toHaveLength(0);

    const second = await link(user.id, google, 'only@gmail.example');
    const page = await agent.navigate(url('/account'));
    const done = await agent.submit(page, `/account/identities/${only.id}/remove`);
    expectPage(done, 200, 'The linked account is removed.', '<strong>Google</strong>');
    expect(await stillThere(only.id)).toBe(false);
    const last = await agent.submit(done, `/account/identities/${second.id}/remove`);
    expectPage(last, 409, LAST_WAY);
    expect(await stillThere(second.id)).toBe(true);
  });

  it('deletes an account without a password only within ten minutes of signing in, with a ticked box', async () => {
    const user = await newUser('no-password-leaving@example.com');
    await link(user.id, github, 'leaving@users.example');
    const { agent } = await signedInAgent('no-password-leaving@example.com');
    await dropPassword(user.id);
    const account = await agent.navigate(url('/account'));
    expectPage(account, 200, 'action="/account/delete"', 'id="deleteConfirm"', 'href="/account/login?prompt=login"');
    expect(account.html).not.toContain('id="deletePassword"');

    // Signed in eleven minutes ago, as far as the session knows: sign in again first.
    const session = await server.prisma.oidcPayload.findFirstOrThrow({ where: { model: 'Session', accountId: user.id } });
    const setLoginTs = (loginTs: number) =>
      server.prisma.oidcPayload.update({ where: { model_id: { model: 'Session', id: session.id } }, data: { payload: { ...(session.payload as object), loginTs } } });
    await setLoginTs(Math.floor(Date.now() / 1000) - 11 * 60);
    const stale = await agent.submit(account, '/account/delete', { confirm: 'yes' });
    expectPage(stale, 403, 'This account has no password: to delete it, sign in again');
    expect(await server.users.findById(user.id)).not.toBeNull();

    await setLoginTs(Math.floor(Date.now() / 1000));
    const unticked = await agent.submit(account, '/account/delete');
    expectPage(unticked, 400, 'Tick the box to confirm that you want to delete your account.');
    expect(unticked.html).toMatch(/id="deleteConfirm"[^>]*aria-invalid="true"/);
    expect(await server.users.findById(user.id)).not.toBeNull();

    const deleted = await agent.submit(account, '/account/delete', { confirm: 'yes' });
    expectPage(deleted, 200, 'Account deleted');
    expect(await server.users.findById(user.id)).toBeNull();
  });

  it('answers 404 for another user\'s identity and leaves it alone', async () => {
    const owner = await newUser('owner@example.com');
    const theirs = await link(owner.id, github, 'owner@users.example');
    await newUser('intruder@example.com');
    const { agent, account } = await signedInAgent('intruder@example.com');
    const res = await post(agent, account, `/account/identities/${theirs.id}/remove`);
    expectPage(res, 404, 'This linked account does not exist');
    expect(res.html).not.toContain('owner@users.example');
    expect(await stillThere(theirs.id)).toBe(true);
    expect(await unlinkedEvents(owner.id)).toHaveLength(0);

    for (const id of ['nope', 'x'.repeat(300), '%E2%82%AC']) {
      expect((await post(agent, account, `/account/identities/${id}/remove`)).status, id).toBe(404);
    }
  });

  it('needs the CSRF token and a signed-in user', async () => {
    const user = await newUser('csrf-links@example.com');
    const identity = await link(user.id, github, null);
    const { agent } = await signedInAgent('csrf-links@example.com');
    const forged = await agent.request(url(`/account/identities/${identity.id}/remove`), { method: 'POST', body: new URLSearchParams({}), headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    expect(forged.status).toBe(403);
    const anonymous = createUserAgent();
    const page = await anonymous.navigate(url('/account'));
    const res = await post(anonymous, page, `/account/identities/${identity.id}/remove`);
    expect(res.url).toMatch(/\/interaction\/[^/]+$/);
    expect(await stillThere(identity.id)).toBe(true);
  });

  it('names upstream sign-ins and linking in the activity list', async () => {
    const user = await newUser('activity-links@example.com');
    await server.audit.record('federated.linked', { userId: user.id, detail: { connection: 'github' } });
    await server.audit.record('login.success', { userId: user.id, detail: { method: 'federated', connection: 'github' } });
    const { account } = await signedInAgent('activity-links@example.com');
    expectPage(account, 200, 'Linked your github account', 'Signed in with github', '<strong>Signed in</strong>');
  });
});

describe('/api/me/identities', () => {
  it('needs a user token', async () => {
    expect((await api('GET', '/me/identities')).status).toBe(401);
    expect((await api('DELETE', '/me/identities/whatever')).status).toBe(401);
  });

  it('lists the linked accounts and removes one (204) with an audit event', async () => {
    const user = await newUser('api-links@example.com');
    const gh = await link(user.id, github, 'api@users.example', new Date('2025-01-02T03:04:05Z'));
    const gg = await link(user.id, google, null);
    const token = await apiToken('api-links@example.com');

    const list = await api('GET', '/me/identities', token);
    expect(list.status).toBe(200);
    const { items } = (await list.json()) as { items: Record<string, unknown>[] };
    expect(items).toEqual([
      { id: gh.id, connection: 'GitHub', kind: 'github', email: 'api@users.example', createdAt: gh.createdAt.toISOString(), lastLoginAt: '2025-01-02T03:04:05.000Z' },
      { id: gg.id, connection: 'Google', kind: 'google', email: null, createdAt: gg.createdAt.toISOString(), lastLoginAt: null },
    ]);

    const removed = await api('DELETE', `/me/identities/${gh.id}`, token);
    expect(removed.status).toBe(204);
    expect(await stillThere(gh.id)).toBe(false);
    const after = (await (await api('GET', '/me/identities', token)).json()) as { items: { id: string }[] };
    expect(after.items.map((i) => i.id)).toEqual([gg.id]);
    expect(await unlinkedEvents(user.id)).toEqual([expect.objectContaining({ detail: { connection: github.slug, connectionId: github.id } })]);
  });

  it('answers 404 for unknown and other users\' identities, changing nothing', async () => {
    const owner = await newUser('api-owner@example.com');
    const theirs = await link(owner.id, github, null);
    await newUser('api-intruder@example.com');
    const token = await apiToken('api-intruder@example.com');
    for (const id of [theirs.id, 'unknown', '00000000-0000-0000-0000-000000000000']) {
      const res = await api('DELETE', `/me/identities/${id}`, token);
      expect(res.status, id).toBe(404);
      expect(res.headers.get('content-type')).toContain('application/problem+json');
      expect(((await res.json()) as { code: string }).code).toBe('NOT_FOUND');
    }
    expect(await stillThere(theirs.id)).toBe(true);
    expect(await unlinkedEvents(owner.id)).toHaveLength(0);
  });

  it('refuses to remove the last way to sign in with 409 LAST_SIGN_IN_METHOD', async () => {
    const user = await newUser('api-only@example.com');
    const only = await link(user.id, github, 'api-only@users.example');
    const token = await apiToken('api-only@example.com');
    await dropPassword(user.id);

    expect((await api('GET', '/me', token)).status).toBe(200);
    const res = await api('DELETE', `/me/identities/${only.id}`, token);
    expect(res.status).toBe(409);
    expect(res.headers.get('content-type')).toContain('application/problem+json');
    expect(await res.json()).toMatchObject({ status: 409, code: 'LAST_SIGN_IN_METHOD' });
    expect(await stillThere(only.id)).toBe(true);
    expect(await unlinkedEvents(user.id)).toHaveLength(0);
  });

  it('is documented in the OpenAPI document with its response schema', async () => {
    const doc = (await (await fetch(url('/api/openapi.json'))).json()) as { paths: Record<string, Record<string, any>> };
    expect(doc.paths['/api/me/identities']?.get?.responses?.['200']?.content?.['application/json']?.schema).toBeDefined();
    expect(Object.keys(doc.paths['/api/me/identities/{id}']?.delete?.responses ?? {})).toEqual(expect.arrayContaining(['204', '404', '409']));
  });
});
