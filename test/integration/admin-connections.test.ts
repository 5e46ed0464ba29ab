import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../support/server.js';
import { PASSWORD } from '../support/oidc.js';
import { createUserAgent, type Page } from '../support/user-agent.js';

/** The admin console's connections pages (/admin/connections) over plain HTTP. */

let server: TestServer;

beforeAll(async () => {
  server = await startTestServer({ CONNECTION_SECRET_KEYS: randomBytes(32).toString('base64') });
  await server.users.create({ email: 'root@example.com', username: 'root', password: PASSWORD, isAdmin: true, isStaff: true, emailVerified: true });
  await server.users.create({ email: 'helper@example.com', username: 'helper', password: PASSWORD, isStaff: true, emailVerified: true });
});
afterAll(() => server?.stop());

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

/** A browser-like agent that opened `path` on `on`, signed in on the login page it was sent to, and came back. */
async function signedIn(login: string, path = '/admin/connections', on = server) {
  const agent = createUserAgent();
  const loginPage = await agent.navigate(`${on.url}${path}`);
  expect(loginPage.url).toMatch(/\/interaction\/[^/]+$/);
  const page = await agent.submit(loginPage, '/login', { login, password: PASSWORD });
  expect(page.url).toBe(`${on.url}${path}`);
  return { agent, page };
}

const rootId = async (on = server) => (await on.users.findByLogin('root'))!.id;
const stored = (slug: string, on = server) => on.prisma.connection.findUnique({ where: { slug } });
/** The newest audit event of this name. */
const lastEvent = async (event: string) => (await server.audit.search({ event, pageSize: 1 })).items[0];
const callback = (slug: string, on = server) => `${on.config.http.publicUrl}/callback/${slug}`;

const GITHUB = { kind: 'github', slug: 'github', name: 'GitHub', clientId: 'gh-client', clientSecret: 'gh-secret-plaintext', scopes: '', enabled: 'on' };

/** The edit form of a connection page, with every field as shown (the secret left blank) and `changes` over it. */
function editValues(page: Page, changes: Record<string, string | undefined> = {}) {
  const values: Record<string, string> = {};
  for (const [tag] of page.html.matchAll(/<input (?![^>]*type="hidden")[^>]*>/g)) {
    const name = /\bname="([^"]+)"/.exec(tag)?.[1];
    if (!name || name === 'confirm' || name === 'clientSecret') continue;
    if (/type="checkbox"/.test(tag)) {
      if (/\bchecked\b/.test(tag)) values[name] = 'on';
    } else values[name] = /\bvalue="([^"]*)"/.exec(tag)?.[1]?.replace(/&#(\d+);/g, (_, c) => String.fromCharCode(Number(c))) ?? '';
  }
  for (const [k, v] of Object.entries(changes)) if (v === undefined) delete values[k];
  else values[k] = v;
  return values;
}

describe('creating', () => {
  it('adds a github connection through the form: listed, its callback URL on its page, its secret stored encrypted, audited', async () => {
    const { agent, page } = await signedIn('root');
    expectPage(page, 200, '<h1>Connections</h1>', 'No global connections yet.', '<a href="/admin/connections" aria-current="page">Connections</a>');
    expectLabelledControls(page.html);

    const created = await agent.submit(page, '/admin/connections', GITHUB);
    const row = (await stored('github'))!;
    expect(created.url).toBe(`${server.url}/admin/connections/${row.id}?notice=created`);
    expectPage(created, 200, 'The connection is added.', `Register this redirect URI at the provider: <code id="callback-url">${callback('github')}</code>`, '<h1>GitHub</h1>');
    expect(created.html).not.toContain(GITHUB.clientSecret);
    expectLabelledControls(created.html);

    expect(row).toMatchObject({ kind: 'github', name: 'GitHub', clientId: 'gh-client', scopes: 'read:user user:email', enabled: true, ownerClientId: null });
    expect(row.clientSecret).toBeTruthy();
    expect(row.clientSecret).not.toContain(GITHUB.clientSecret);
    expect(await server.connections.clientSecretOf(row)).toBe(GITHUB.clientSecret);

    const list = await agent.navigate(`${server.url}/admin/connections`);
    expectPage(list, 200, `<a href="/admin/connections/${row.id}">GitHub</a>`, '<code>github</code>', callback('github'));

    const event = await lastEvent('admin.connection_created');
    expect(event).toMatchObject({ actorId: await rootId(), detail: { connectionId: row.id, slug: 'github' } });
  });

  it('answers bad input with 400, the message on the page and the values kept (never the secret), storing nothing', async () => {
    const { agent, page } = await signedIn('root');
    const before = await server.prisma.connection.count();
    const typed = 'typed-secret-never-echoed';

    const badSlug = await agent.submit(page, '/admin/connections', { ...GITHUB, slug: 'Bad Slug!', name: 'Typed name', clientSecret: typed });
    expectPage(badSlug, 400, 'Slug: use 1 to 63 lower-case letters, digits and dashes', 'value="Bad Slug!"', 'value="Typed name"');
    expect(badSlug.html).toMatch(/id="slug"[^>]*aria-invalid="true"/);
    expect(badSlug.html).not.toContain(typed);

    const noIssuer = await agent.submit(page, '/admin/connections', { kind: 'oidc', slug: 'corp', name: 'Corp', clientId: 'corp-client', enabled: 'on' });
    expectPage(noIssuer, 400, 'Enter the issuer URL: it is required for an oidc connection.', 'value="corp"');
    expect(noIssuer.html).toMatch(/<option value="oidc" selected>/);
    expect(noIssuer.html).toMatch(/id="issuer"[^>]*aria-invalid="true"/);

    const plainHttp = await agent.submit(page, '/admin/connections', {
      kind: 'oauth2',
      slug: 'legacy',
      name: 'Legacy',
      clientId: 'legacy-client',
      clientSecret: typed,
      authorizationUrl: 'http://auth.example.com/authorize',
      tokenUrl: 'https://auth.example.com/token',
      userinfoUrl: 'https://auth.example.com/me',
    });
    expectPage(plainHttp, 400, 'Authorization URL: “http://auth.example.com/authorize” must use https (http is allowed on localhost only).', 'value="https://auth.example.com/token"');
    expect(plainHttp.html).not.toContain(typed);

    // Text that is no URL at all, with another mistake: both marked, and no 500.
    const several = await agent.submit(page, '/admin/connections', { kind: 'oidc', slug: '-corp', name: 'Corp', clientId: 'corp-client', issuer: 'not a url' });
    expectPage(several, 400, 'Please correct the fields marked below.', 'Issuer URL: “not a url” is not a valid URL', 'Slug: use 1 to 63');

    const unknownKind = await agent.submit(page, '/admin/connections', { ...GITHUB, kind: 'myspace', slug: 'myspace' });
    expectPage(unknownKind, 400, 'Choose a kind of connection from the list.');

    const googleNoSecret = await agent.submit(page, '/admin/connections', { kind: 'google', slug: 'google', name: 'Google', clientId: 'g-client', enabled: 'on' });
    expectPage(googleNoSecret, 400, 'Enter the client secret: it is required for google.');
    const googleIssuer = await agent.submit(page, '/admin/connections', { kind: 'google', slug: 'google', name: 'Google', clientId: 'g-client', clientSecret: typed, issuer: 'https://google.example' });
    expectPage(googleIssuer, 400, 'Issuer URL: google connections use https://accounts.google.com.');

    expect(await server.prisma.connection.count()).toBe(before);
    await agent.submit(page, '/admin/connections', { ...GITHUB, slug: 'taken' });
    const taken = await agent.submit(page, '/admin/connections', { ...GITHUB, slug: 'taken', clientSecret: typed });
    expectPage(taken, 409, 'A connection with the slug “taken” already exists: choose another.');
    expect(taken.html).not.toContain(typed);
    expect(await server.prisma.connection.count()).toBe(before + 1);
  });

  it('refuses a POST without the CSRF token', async () => {
    const { agent } = await signedIn('root');
    const res = await agent.request(`${server.url}/admin/connections`, {
      method: 'POST',
      body: new URLSearchParams({ ...GITHUB, slug: 'forged' }),
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(res.status).toBe(403);
    expect(await stored('forged')).toBeNull();
  });
});

describe('editing and deleting', () => {
  it('saves changes, keeping the secret when the field is left blank and replacing it when given; each save audited', async () => {
    const { agent, page } = await signedIn('root');
    const created = await agent.submit(page, '/admin/connections', { ...GITHUB, slug: 'ghe', name: 'GHE' });
    const before = (await stored('ghe'))!;

    const saved = await agent.submit(created, `/admin/connections/${before.id}`, editValues(created, {
      name: 'Acme GitHub',
      authorizationUrl: 'https://github.acme.example/login/oauth/authorize',
      tokenUrl: 'https://github.acme.example/login/oauth/access_token',
      userinfoUrl: 'https://github.acme.example/api/v3/user',
      enabled: undefined,
    }));
    expect(saved.url).toBe(`${server.url}/admin/connections/${before.id}?notice=saved`);
    expectPage(saved, 200, 'The changes are saved.', '<h1>Acme GitHub <span class="badge">disabled</span></h1>', 'https://github.acme.example/api/v3/user');
    const after = (await stored('ghe'))!;
    expect(after).toMatchObject({ name: 'Acme GitHub', enabled: false, clientSecret: before.clientSecret, userinfoUrl: 'https://github.acme.example/api/v3/user' });
    expect(await lastEvent('admin.connection_updated')).toMatchObject({
      actorId: await rootId(),
      detail: {
        connectionId: before.id,
        slug: 'ghe',
        fields: ['name', 'authorizationUrl', 'tokenUrl', 'userinfoUrl', 'enabled'],
        changes: { name: { from: 'GHE', to: 'Acme GitHub' }, userinfoUrl: { from: null, to: 'https://github.acme.example/api/v3/user' }, enabled: { from: true, to: false } },
      },
    });

    expectPage(await agent.submit(saved, `/admin/connections/${before.id}`, editValues(saved)), 200, 'Nothing changed.');
    expect((await stored('ghe'))!.updatedAt).toEqual(after.updatedAt);

    // A new secret replaces the old one; emptied scopes go back to the kind's default.
    await agent.submit(saved, `/admin/connections/${before.id}`, editValues(saved, { clientSecret: 'rotated-secret', scopes: 'read:user' }));
    const rotated = (await stored('ghe'))!;
    expect(rotated.clientSecret).not.toBe(before.clientSecret);
    expect(rotated.clientSecret).not.toContain('rotated-secret');
    expect(await server.connections.clientSecretOf(rotated)).toBe('rotated-secret');
    expect(rotated.scopes).toBe('read:user');
    expect((await lastEvent('admin.connection_updated'))!.detail).toMatchObject({
      fields: ['clientSecret', 'scopes'],
      changes: { clientSecret: { changed: true }, scopes: { from: ['read:user', 'user:email'], to: ['read:user'] } },
    });
    expect(JSON.stringify(await lastEvent('admin.connection_updated'))).not.toContain('rotated-secret');
    await agent.submit(saved, `/admin/connections/${before.id}`, editValues(saved, { scopes: '' }));
    expect((await stored('ghe'))!.scopes).toBe('read:user user:email');

    // Mistakes re-render the form with what was typed, and change nothing.
    const bad = await agent.submit(saved, `/admin/connections/${before.id}`, editValues(saved, { name: 'Still typed', tokenUrl: 'http://github.acme.example/token', clientSecret: 'unsaved-secret' }));
    expectPage(bad, 400, 'Token URL: “http://github.acme.example/token” must use https', 'value="Still typed"');
    expect(bad.html).not.toContain('unsaved-secret');
    expect((await stored('ghe'))!).toMatchObject({ name: 'Acme GitHub', clientSecret: rotated.clientSecret });
  });

  it("won't leave an oidc connection without its issuer", async () => {
    const { agent, page } = await signedIn('root');
    const created = await agent.submit(page, '/admin/connections', { kind: 'oidc', slug: 'okta', name: 'Okta', clientId: 'okta-client', issuer: 'https://acme.okta.example', enabled: 'on' });
    expect(created.html).not.toContain('id="authorizationUrl"');
    const id = (await stored('okta'))!.id;
    const cleared = await agent.submit(created, `/admin/connections/${id}`, editValues(created, { issuer: '' }));
    expectPage(cleared, 400, 'Enter the issuer URL: it is required for an oidc connection.');
    expect((await stored('okta'))!.issuer).toBe('https://acme.okta.example');
  });

  it('deletes a connection once confirmed, audited', async () => {
    const { agent, page } = await signedIn('root');
    const created = await agent.submit(page, '/admin/connections', { ...GITHUB, slug: 'doomed', name: 'Doomed' });
    const row = (await stored('doomed'))!;
    expectPage(created, 200, 'This cannot be undone.');

    const unconfirmed = await agent.submit(created, `/admin/connections/${row.id}/delete`);
    expectPage(unconfirmed, 400, 'Tick the box to confirm that this connection is to be deleted.');
    expect(await stored('doomed')).not.toBeNull();

    const deleted = await agent.submit(created, `/admin/connections/${row.id}/delete`, { confirm: 'on' });
    expect(deleted.url).toBe(`${server.url}/admin/connections?notice=connection_deleted`);
    expectPage(deleted, 200, 'The connection is deleted.');
    expect(deleted.html).not.toContain('Doomed');
    expect(await stored('doomed')).toBeNull();
    expect(await lastEvent('admin.connection_deleted')).toMatchObject({ actorId: await rootId(), detail: { connectionId: row.id, slug: 'doomed' } });
    expectPage(await agent.navigate(`${server.url}/admin/connections/${row.id}`), 404, 'No such connection');
  });

  it("shows and edits an app's own connection, naming its app", async () => {
    const app = await server.clients.create({ name: 'Storefront', redirectUris: ['https://shop.example/cb'], grantTypes: ['authorization_code'] });
    const own = await server.connections.create({ kind: 'oidc', slug: 'shop-sso', name: 'Shop SSO', clientId: 'shop', issuer: 'https://sso.shop.example' }, app.clientId);
    const { agent, page } = await signedIn('root');
    expectPage(page, 200, 'Apps’ own connections', `<a href="/admin/connections/${own.id}">Shop SSO</a>`, `<a href="/admin/apps/${app.clientId}">Storefront</a>`);

    const ownPage = await agent.navigate(`${server.url}/admin/connections/${own.id}`);
    expectPage(ownPage, 200, 'Owned by the app <a href="/admin/apps/', '>Storefront</a>', callback('shop-sso'));
    const saved = await agent.submit(ownPage, `/admin/connections/${own.id}`, editValues(ownPage, { name: 'Shop login' }));
    expectPage(saved, 200, 'The changes are saved.', '<h1>Shop login</h1>');
    expect(await lastEvent('admin.connection_updated')).toMatchObject({ actorId: await rootId(), detail: { connectionId: own.id, clientId: app.clientId, fields: ['name'] } });
  });
});

describe('access', () => {
  it('sends anonymous visitors to sign in', async () => {
    const res = await createUserAgent().request(`${server.url}/admin/connections`);
    expect(res.status).toBe(303);
    const location = new URL(res.headers.get('location')!, server.url);
    expect(location.pathname).toBe('/account/login');
    expect(location.searchParams.get('next')).toBe('/admin/connections');
  });

  it('shows staff a 403 page and no nav link, and refuses their forms', async () => {
    const row = await server.connections.create({ kind: 'oidc', slug: 'staff-proof', name: 'Staff proof', clientId: 'sp', issuer: 'https://idp.example' });
    const agent = createUserAgent();
    const login = await agent.navigate(`${server.url}/admin`);
    const users = await agent.submit(login, '/login', { login: 'helper', password: PASSWORD });
    expectPage(users, 200, '<h1>Users</h1>');
    expect(users.html).not.toContain('href="/admin/connections"');
    for (const path of ['/admin/connections', `/admin/connections/${row.id}`]) {
      expectPage(await agent.navigate(`${server.url}${path}`), 403, 'Only admins can open this part of the console.');
    }
    const csrf = /name="_csrf" value="([^"]+)"/.exec(users.html)![1]!;
    const post = (path: string, values: Record<string, string>) =>
      agent.navigate(`${server.url}${path}`, { method: 'POST', body: new URLSearchParams({ _csrf: csrf, ...values }), headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    expectPage(await post('/admin/connections', { ...GITHUB, slug: 'by-staff' }), 403);
    expectPage(await post(`/admin/connections/${row.id}`, { name: 'Renamed by staff', clientId: row.clientId }), 403);
    expectPage(await post(`/admin/connections/${row.id}/delete`, { confirm: 'on' }), 403);
    expect(await stored('by-staff')).toBeNull();
    expect(await stored('staff-proof')).toMatchObject({ name: 'Staff proof' });
  });
});

describe('without CONNECTION_SECRET_KEYS', () => {
  it('shows the missing key as a form error (409), storing nothing; connections without a secret still work', async () => {
    const keyless = await startTestServer();
    try {
      await keyless.users.create({ email: 'root@example.com', username: 'root', password: PASSWORD, isAdmin: true, emailVerified: true });
      const { agent, page } = await signedIn('root', '/admin/connections', keyless);
      const refused = await agent.submit(page, '/admin/connections', GITHUB);
      expectPage(refused, 409, 'This server has no key to encrypt upstream client secrets: set CONNECTION_SECRET_KEYS', 'value="gh-client"');
      expect(refused.html).toMatch(/id="clientSecret"[^>]*aria-invalid="true"/);
      expect(refused.html).not.toContain(GITHUB.clientSecret);
      expect(await stored('github', keyless)).toBeNull();

      const open = await agent.submit(page, '/admin/connections', { kind: 'oidc', slug: 'public-idp', name: 'Public IdP', clientId: 'pkce-only', issuer: 'https://idp.example', enabled: 'on' });
      expectPage(open, 200, 'The connection is added.', callback('public-idp', keyless));
      const row = (await stored('public-idp', keyless))!;
      const secretless = await agent.submit(open, `/admin/connections/${row.id}`, editValues(open, { clientSecret: 'late-secret' }));
      expectPage(secretless, 409, 'set CONNECTION_SECRET_KEYS');
      expect((await stored('public-idp', keyless))!.clientSecret).toBeNull();
    } finally {
      await keyless.stop();
    }
  });
});
