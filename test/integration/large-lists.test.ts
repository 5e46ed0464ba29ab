import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../support/server.js';
import { PASSWORD } from '../support/oidc.js';
import { createApiClient } from '../support/api-client.js';
import { createUserAgent } from '../support/user-agent.js';

// Lists with more rows than a query may bind parameters for (SQLite: about 1,000) answer pages, not
// 500s: the user search and an app's users, in the API and on the console's pages.

let server: TestServer;
const t = {} as { admin: string; dev: string };
const { call, json, expectProblem, login, makeUser } = createApiClient(() => server);

const BULK = 1_000;
const HOUR = 3_600_000;
type Row = { id: string; email: string; username: string | null; name: string | null; givenName: string | null; familyName: string | null };
const matches = (u: Row, search: string) => [u.email, u.username, u.name, u.givenName, u.familyName].some((v) => v?.toLowerCase().includes(search.toLowerCase()));

/** Rows in batches (a statement binds a bounded number of parameters). */
async function inBatches<T>(rows: T[], insert: (batch: T[]) => Promise<unknown>) {
  for (let i = 0; i < rows.length; i += 200) await insert(rows.slice(i, i + 200));
}

/** Every user in the order the unsearched list keeps (oldest first), as the database sorts. */
const byAge = () => server.prisma.user.findMany({ orderBy: [{ createdAt: 'asc' }, { id: 'asc' }] });

let granted: Set<string>;

beforeAll(async () => {
  server = await startTestServer();
  const [admin, dev] = await Promise.all([makeUser({ isAdmin: true, isStaff: true }), makeUser({ isDeveloper: true })]);
  Object.assign(t, { admin: (await login(admin.username)).access_token, dev: (await login(dev.username)).access_token });

  // BULK users match "cc" by email; a few more only by a name, in capitals; some not at all. Three
  // share each creation time (the id breaks the tie), and they are written out of order.
  const base = Date.now() - 30 * 24 * HOUR;
  const n = (i: number) => String(i).padStart(4, '0');
  const users = [
    ...Array.from({ length: BULK }, (_, i) => ({ email: `bulkcc${n(i)}@example.com`, username: `bulkcc${n(i)}` })),
    ...Array.from({ length: 15 }, (_, i) => ({ email: `named${n(i)}@example.com`, username: `named${n(i)}`, name: 'ACCOUNT Holder', givenName: 'Rebecca' })),
    ...Array.from({ length: 25 }, (_, i) => ({ email: `other${n(i)}@example.com`, username: `other${n(i)}`, name: 'Someone Else' })),
  ].map((u, i) => ({ ...u, id: randomUUID(), emailNormalized: u.email, usernameNormalized: u.username, createdAt: new Date(base + Math.floor(i / 3) * 1000), emailVerified: true }));
  users.sort((a, b) => a.id.localeCompare(b.id));
  await inBatches(users, (data) => server.prisma.user.createMany({ data }));

  // Every bulk user granted the built-in latch-api client access (one of them twice); the
  // others hold only an expired grant, or one for another client.
  const grant = (accountId: string, clientId: string, expiresAt: Date) => ({ model: 'Grant', id: randomUUID(), payload: { accountId, clientId }, accountId, clientId, expiresAt });
  const live = new Date(Date.now() + HOUR);
  const bulk = users.filter((u) => u.email.startsWith('bulkcc'));
  const grants = [
    ...bulk.map((u) => grant(u.id, 'latch-api', live)),
    grant(bulk[0]!.id, 'latch-api', live),
    ...users.filter((u) => u.email.startsWith('named')).map((u) => grant(u.id, 'latch-api', new Date(Date.now() - HOUR))),
    ...users.filter((u) => u.email.startsWith('other')).map((u) => grant(u.id, 'latch-account', live)),
  ];
  await inBatches(grants, (data) => server.prisma.oidcPayload.createMany({ data }));
  // Who holds a live latch-api grant: the bulk users, and whoever signed in above through the API.
  const rows = await server.prisma.oidcPayload.findMany({ where: { model: 'Grant', clientId: 'latch-api', expiresAt: { gt: new Date() } }, select: { accountId: true } });
  granted = new Set(rows.map((r) => r.accountId!));
}, 60_000);
afterAll(() => server?.stop());

describe('searching many users', () => {
  it('pages over a thousand matches, counted, in the order of the unsearched list', async () => {
    const all = await byAge();
    const expected = all.filter((u) => matches(u, 'cc'));
    expect(expected.length).toBeGreaterThan(BULK);

    const first = await json(await call('GET', '/api/users?search=cc&pageSize=5', t.admin));
    expect(first).toMatchObject({ total: expected.length, page: 1, pageSize: 5 });
    expect(first.items.map((u: Row) => u.id)).toEqual(expected.slice(0, 5).map((u) => u.id));

    const middle = await json(await call('GET', '/api/users?search=cc&pageSize=7&page=90', t.admin));
    expect(middle.items.map((u: Row) => u.email)).toEqual(expected.slice(623, 630).map((u) => u.email));

    const lastPage = Math.ceil(expected.length / 100);
    const last = await json(await call('GET', `/api/users?search=cc&pageSize=100&page=${lastPage}`, t.admin));
    expect(last.items.map((u: Row) => u.id)).toEqual(expected.slice((lastPage - 1) * 100).map((u) => u.id));
    // The same fields as the unsearched list.
    const plain = await json(await call('GET', '/api/users?pageSize=1', t.admin));
    expect(Object.keys(last.items[0]).sort()).toEqual(Object.keys(plain.items[0]).sort());

    const beyond = await json(await call('GET', `/api/users?search=cc&pageSize=100&page=${lastPage + 1}`, t.admin));
    expect(beyond).toMatchObject({ items: [], total: expected.length, page: lastPage + 1 });
  });

  it('matches case-insensitively, by name and given name too', async () => {
    const total = (await json(await call('GET', '/api/users?search=cc&pageSize=1', t.admin))).total;
    expect((await json(await call('GET', '/api/users?search=CC&pageSize=1', t.admin))).total).toBe(total);
    const named = await json(await call('GET', '/api/users?search=account%20HOLDER&pageSize=100', t.admin));
    expect(named.total).toBe(15);
    expect((await json(await call('GET', '/api/users?search=rebecca', t.admin))).total).toBe(15);
    expect((await json(await call('GET', '/api/users?search=nobody-at-all', t.admin))).total).toBe(0);
  });
});

describe("an app's users", () => {
  /** The users holding a live grant of latch-api, ordered by email as the database sorts. */
  const expectedUsers = async () => (await server.prisma.user.findMany({ orderBy: [{ email: 'asc' }, { id: 'asc' }] })).filter((u) => granted.has(u.id));

  it('come a page at a time, by email, with the total; expired grants do not count', async () => {
    const expected = await expectedUsers();
    expect(expected.length).toBeGreaterThan(BULK);

    const first = await json(await call('GET', '/api/apps/latch-api/users', t.admin));
    expect(first).toMatchObject({ total: expected.length, page: 1, pageSize: 20 });
    expect(first.items).toEqual(expected.slice(0, 20).map((u) => ({ id: u.id, email: u.email, name: u.name, username: u.username, lastLoginAt: u.lastLoginAt?.toISOString() ?? null })));

    const third = await json(await call('GET', '/api/apps/latch-api/users?page=3&pageSize=7', t.admin));
    expect(third.items.map((u: Row) => u.email)).toEqual(expected.slice(14, 21).map((u) => u.email));

    const lastPage = Math.ceil(expected.length / 100);
    const last = await json(await call('GET', `/api/apps/latch-api/users?page=${lastPage}&pageSize=100`, t.admin));
    expect(last.items.map((u: Row) => u.id)).toEqual(expected.slice((lastPage - 1) * 100).map((u) => u.id));
    expect(last.items.map((u: Row) => u.email)).not.toContain('named0000@example.com');
  });

  it('refuse a page out of bounds (400) as /api/users does, after the access check (404)', async () => {
    for (const q of ['page=0', 'pageSize=0', 'pageSize=101', 'page=1000001', 'page=x']) {
      await expectProblem(await call('GET', `/api/apps/latch-api/users?${q}`, t.admin), 400, 'VALIDATION_FAILED');
    }
    await expectProblem(await call('GET', '/api/apps/latch-api/users?pageSize=101', t.dev), 404, 'CLIENT_NOT_FOUND');
  });
});

describe('the console', () => {
  it('pages a search with a thousand matches, and the users of an app', async () => {
    const agent = createUserAgent();
    const loginPage = await agent.navigate(`${server.url}/admin`);
    const admin = (await server.prisma.user.findFirst({ where: { isAdmin: true } }))!;
    const home = await agent.submit(loginPage, '/login', { login: admin.username!, password: PASSWORD });
    expect(home.status).toBe(200);

    const total = (await byAge()).filter((u) => matches(u, 'cc')).length;
    const search = await agent.navigate(`${server.url}/admin/users?search=cc&page=2`);
    expect(search.status, search.html.slice(0, 2000)).toBe(200);
    expect(search.html).toContain(`Users 21–40 of ${total} matching “cc”`);

    const expected = (await server.prisma.user.findMany({ orderBy: [{ email: 'asc' }, { id: 'asc' }] })).filter((u) => granted.has(u.id));
    const app = await agent.navigate(`${server.url}/admin/apps/latch-api`);
    expect(app.status, app.html.slice(0, 2000)).toBe(200);
    expect(app.html).toContain(`Users 1–20 of ${expected.length}, by email`);
    expect(app.html).toContain(expected[19]!.email);
    expect(app.html).not.toContain(expected[20]!.email);
    expect(app.html).toContain('<a href="/admin/apps/latch-api?page=2#users-heading" rel="next">Next page</a>');

    const second = await agent.navigate(`${server.url}/admin/apps/latch-api?page=2`);
    expect(second.html).toContain(`Users 21–40 of ${expected.length}, by email`);
    expect(second.html).toContain(expected[20]!.email);
    expect(second.html).not.toContain(`>${expected[19]!.email}<`);
    expect(second.html).toContain('<a href="/admin/apps/latch-api#users-heading" rel="prev">Previous page</a>');
  });
});
