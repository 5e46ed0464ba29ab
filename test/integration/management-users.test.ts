import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../support/server.js';
import { PASSWORD } from '../support/oidc.js';
import { createApiClient } from '../support/api-client.js';

// /api/users: staff and admins manage users; staff only ordinary users and never roles; only admins
// delete; the last active admin can be neither demoted, disabled nor deleted.

let server: TestServer;
const t = {} as { admin: string; staff: string; user: string };
const ids = {} as { admin: string; staff: string; user: string };

const { unique, call, json, expectProblem, login, makeUser, serviceClient } = createApiClient(() => server, { user: { givenName: 'Gus' } });
/** A client-credentials token of a client registered with the latch:admin scope. */
const serviceToken = async () => (await serviceClient()).token;
const read = async (id: string) => json(await call('GET', `/api/users/${id}`, t.admin));

beforeAll(async () => {
  server = await startTestServer();
  const [admin, staff, user] = await Promise.all([makeUser({ isAdmin: true, isStaff: true }), makeUser({ isStaff: true }), makeUser()]);
  Object.assign(ids, { admin: admin.id, staff: staff.id, user: user.id });
  Object.assign(t, { admin: (await login(admin.username)).access_token, staff: (await login(staff.username)).access_token, user: (await login(user.username)).access_token });
});
afterAll(() => server?.stop());

describe('listing', () => {
  const names = ['Pager One', 'Pager Two', 'Pager Three', 'Pager Four', 'Pager Five'];
  let created: string[] = [];
  beforeAll(async () => {
    created = [];
    for (const [i, name] of names.entries()) {
      const res = await call('POST', '/api/users', t.admin, { username: `pager${i}`, email: `pager${i}@paging.test`, password: PASSWORD, name });
      expect(res.status).toBe(201);
      created.push((await json(res)).id);
    }
  });

  it.each([
    ['by email, case-insensitively', 'PAGING.TEST'],
    ['by name', 'Pager'],
    ['by name, case-insensitively', 'pager t'],
    ['by username', 'pager'],
  ])('searches %s', async (_what, search) => {
    for (const token of [t.staff, t.admin]) {
      const page = await json(await call('GET', `/api/users?search=${encodeURIComponent(search)}&pageSize=100`, token));
      const expected = search === 'pager t' ? [created[1], created[2]] : created;
      expect(page.items.map((u: { id: string }) => u.id)).toEqual(expected);
      expect(page.total).toBe(expected.length);
      expect(page.items[0].passwordHash).toBeUndefined();
    }
  });

  it.each(['%', '_', '\\'])('treats %s in a search as a literal character', async (term) => {
    const page = await json(await call('GET', `/api/users?search=${encodeURIComponent(term)}`, t.admin));
    expect(page.total).toBe(0);
  });

  it('pages with a stable order (oldest first) and a total', async () => {
    const seen: string[] = [];
    for (const page of [1, 2, 3, 4]) {
      const body = await json(await call('GET', `/api/users?search=paging.test&pageSize=2&page=${page}`, t.staff));
      expect(body).toMatchObject({ total: 5, page, pageSize: 2 });
      expect(body.items).toHaveLength([2, 2, 1, 0][page - 1]!);
      seen.push(...body.items.map((u: { id: string }) => u.id));
    }
    expect(seen).toEqual(created);
    const all = await json(await call('GET', '/api/users?pageSize=100', t.admin));
    expect(all.total).toBe(all.items.length);
    const stamps = all.items.map((u: { createdAt: string }) => u.createdAt);
    expect([...stamps].sort()).toEqual(stamps);
    expect((await json(await call('GET', '/api/users?search=nobody-by-this-name', t.admin))).total).toBe(0);
    // Prisma's engine keeps the offset in 32 bits, so a page this far would wrap to another one:
    // page numbers stop at a million.
    await expectProblem(await call('GET', '/api/users?search=paging.test&pageSize=2&page=2147483649', t.staff), 400, 'VALIDATION_FAILED');
  });
});

describe('creating', () => {
  const valid = () => {
    const username = unique('c');
    return { username, email: `${username}@example.com`, password: PASSWORD };
  };

  it.each(['username', 'password', 'email'])('needs %s (400 with its path)', async (field) => {
    const body: Record<string, string> = valid();
    delete body[field];
    const res = await call('POST', '/api/users', t.admin, body);
    await expectProblem(res.clone(), 400, 'VALIDATION_FAILED');
    expect((await json(res)).errors.map((e: { path: string }) => e.path)).toEqual([field]);
    expect((await json(await call('GET', `/api/users?search=${body.email ?? body.username}`, t.admin))).total).toBe(0);
  });

  it('lets staff create an ordinary user, and admins set roles; the user can sign in', async () => {
    const plain = valid();
    const byStaff = await call('POST', '/api/users', t.staff, plain);
    expect(byStaff.status).toBe(201);
    const made = await json(byStaff);
    expect(made).toMatchObject({ username: plain.username, email: plain.email, isAdmin: false, isStaff: false, active: true });
    expect(made.passwordHash).toBeUndefined();
    expect(await read(made.id)).toMatchObject({ email: plain.email });

    const roles = { ...valid(), emailVerified: true, isDeveloper: true, isStaff: true };
    const byAdmin = await json(await call('POST', '/api/users', t.admin, roles));
    expect(await read(byAdmin.id)).toMatchObject({ isDeveloper: true, isStaff: true, emailVerified: true });
    expect((await login(roles.username)).access_token).toBeTruthy();
  });

  it.each(['isAdmin', 'isStaff', 'isDeveloper', 'active', 'emailVerified'])('refuses staff setting %s (403), creating nothing', async (flag) => {
    const body = { ...valid(), [flag]: flag !== 'active' };
    await expectProblem(await call('POST', '/api/users', t.staff, body), 403, 'FORBIDDEN');
    expect((await json(await call('GET', `/api/users?search=${body.username}`, t.admin))).total).toBe(0);
  });

  it('refuses taken emails and usernames (409) and weak passwords (400)', async () => {
    const first = valid();
    expect((await call('POST', '/api/users', t.admin, first)).status).toBe(201);
    await expectProblem(await call('POST', '/api/users', t.admin, { ...valid(), email: first.email.toUpperCase() }), 409, 'EMAIL_TAKEN');
    await expectProblem(await call('POST', '/api/users', t.admin, { ...valid(), username: first.username }), 409, 'USERNAME_TAKEN');
    const weak = await call('POST', '/api/users', t.admin, { ...valid(), password: 'password1' });
    await expectProblem(weak.clone(), 400, 'WEAK_PASSWORD');
    expect((await json(weak)).errors[0].path).toBe('password');
  });
});

describe('concurrent requests', () => {
  it('creating the same email three times at once gives one 201 and two 409s, never a 500', async () => {
    const email = `${unique('twin')}@example.com`;
    const results = await Promise.all([1, 2, 3].map((i) => call('POST', '/api/users', t.admin, { username: unique(`twin${i}`), email, password: PASSWORD })));
    expect(results.map((r) => r.status).sort()).toEqual([201, 409, 409]);
    expect((await json(await call('GET', `/api/users?search=${email}`, t.admin))).total).toBe(1);
  });
});

describe('reading and editing', () => {
  it('shows one user to staff; unknown ids are 404', async () => {
    const user = await json(await call('GET', `/api/users/${ids.user}`, t.staff));
    expect(user).toMatchObject({ id: ids.user, givenName: 'Gus', active: true });
    expect(user.passwordHash).toBeUndefined();
    await expectProblem(await call('GET', '/api/users/unknown', t.staff), 404, 'USER_NOT_FOUND');
  });

  it('lets staff edit an ordinary user', async () => {
    const u = await makeUser();
    const res = await call('PATCH', `/api/users/${u.id}`, t.staff, { familyName: 'Edited', password: 'sunny plains garage 7' });
    expect(res.status).toBe(200);
    expect(await read(u.id)).toMatchObject({ familyName: 'Edited', givenName: 'Gus' });
    expect((await login(u.username, 'sunny plains garage 7')).access_token).toBeTruthy();
  });

  it('refuses staff editing a developer (403): their password would reach the developer\'s apps', async () => {
    const u = await makeUser({ isDeveloper: true });
    await expectProblem(await call('PATCH', `/api/users/${u.id}`, t.staff, { password: 'sunny plains garage 7' }), 403, 'FORBIDDEN');
    expect((await login(u.username)).access_token).toBeTruthy();
  });

  it("refuses staff reading an admin, staff or developer (403, as an edit), showing nothing of them; admins read all", async () => {
    const dev = await makeUser({ isDeveloper: true });
    for (const id of [ids.admin, ids.staff, dev.id]) {
      const res = await call('GET', `/api/users/${id}`, t.staff);
      await expectProblem(res.clone(), 403, 'FORBIDDEN');
      const body = await res.text();
      expect(JSON.parse(body).detail).toBe('Staff may read and edit ordinary users only.');
      expect(body).not.toMatch(/@example\.com|"email"|"isAdmin"/);
      expect(await read(id)).toMatchObject({ id });
    }
  });

  it.each([
    ['PATCH', 'a staff user', () => ids.staff],
    ['PUT', 'a staff user', () => ids.staff],
    ['PATCH', 'an admin', () => ids.admin],
    ['PUT', 'an admin', () => ids.admin],
  ])('refuses staff %s on %s (403), changing nothing', async (method, _who, id) => {
    const before = await read(id());
    await expectProblem(await call(method, `/api/users/${id()}`, t.staff, { email: before.email, familyName: 'Hacked' }), 403, 'FORBIDDEN');
    expect((await read(id())).familyName).toBe(before.familyName);
  });

  it.each(['isAdmin', 'isStaff', 'active', 'isDeveloper', 'emailVerified'])('refuses staff setting %s on an ordinary user (403)', async (flag) => {
    const u = await makeUser();
    const before = await read(u.id);
    await expectProblem(await call('PATCH', `/api/users/${u.id}`, t.staff, { [flag]: !before[flag] }), 403, 'FORBIDDEN');
    expect(await read(u.id)).toEqual(before);
  });

  it('lets admins grant roles, which apply to the user\'s existing token at once', async () => {
    const u = await makeUser();
    const token = (await login(u.username)).access_token;
    expect((await call('GET', '/api/users', token)).status).toBe(403);
    expect((await call('PATCH', `/api/users/${u.id}`, t.admin, { isStaff: true, isDeveloper: true })).status).toBe(200);
    expect(await read(u.id)).toMatchObject({ isStaff: true, isDeveloper: true, isAdmin: false });
    expect((await call('GET', '/api/users', token)).status).toBe(200);
  });

  it('PUT replaces the profile: omitted name fields are cleared, roles kept', async () => {
    const u = await makeUser({ isDeveloper: true }, { familyName: 'Keep', name: 'Gus Keep' });
    const res = await call('PUT', `/api/users/${u.id}`, t.admin, { email: u.email, givenName: 'Only' });
    expect(res.status).toBe(200);
    expect(await read(u.id)).toMatchObject({ email: u.email, givenName: 'Only', familyName: null, name: null, username: null, isDeveloper: true, active: true });
  });

  it('refuses an email that belongs to someone else (409), changing nothing else the request asked for', async () => {
    const [a, b] = [await makeUser(), await makeUser()];
    await expectProblem(await call('PATCH', `/api/users/${a.id}`, t.admin, { email: b.email }), 409, 'EMAIL_TAKEN');
    const before = await read(a.id);
    expect(before.email).toBe(a.email);
    await expectProblem(await call('PATCH', `/api/users/${a.id}`, t.admin, { email: b.email, isAdmin: true, active: false, familyName: 'Half' }), 409, 'EMAIL_TAKEN');
    expect(await read(a.id)).toEqual(before);
  });

  it('keeps a new email confirmed when the same edit says it is', async () => {
    const u = await makeUser();
    const email = `${unique('confirmed')}@example.com`;
    expect(await json(await call('PATCH', `/api/users/${u.id}`, t.admin, { email, emailVerified: true }))).toMatchObject({ email, emailVerified: true });
    expect(await json(await call('PATCH', `/api/users/${u.id}`, t.admin, { email: `${unique('again')}@example.com` }))).toMatchObject({ emailVerified: false });
  });

  it('disabling a user ends their access and refresh tokens at once; they cannot sign in until re-enabled', async () => {
    const u = await makeUser();
    const session = await login(u.username);
    expect((await call('GET', '/api/me', session.access_token)).status).toBe(200);

    expect((await json(await call('PATCH', `/api/users/${u.id}`, t.admin, { active: false }))).active).toBe(false);
    await expectProblem(await call('GET', '/api/me', session.access_token), 401, 'UNAUTHENTICATED');
    expect((await call('POST', '/api/auth/refresh', undefined, { refresh_token: session.refresh_token })).status).toBe(400);
    await expectProblem(await call('POST', '/api/auth/login', undefined, { username: u.username, password: PASSWORD }), 401, 'INVALID_CREDENTIALS');

    expect((await call('PATCH', `/api/users/${u.id}`, t.admin, { active: true })).status).toBe(200);
    expect((await login(u.username)).access_token).toBeTruthy();
  });

  it('an admin replacing a password signs the user out everywhere and ends their emailed links', async () => {
    const u = await makeUser();
    const session = await login(u.username);
    const link = await server.tokens.issue('magic-link', { userId: u.id, email: u.email, ttlSeconds: 900 });
    expect((await call('PATCH', `/api/users/${u.id}`, t.admin, { password: 'quiet orchard lantern 9' })).status).toBe(200);
    expect((await call('GET', '/api/me', session.access_token)).status).toBe(401);
    expect((await call('POST', '/api/auth/login', undefined, { username: u.username, password: PASSWORD })).status).toBe(401);
    expect((await login(u.username, 'quiet orchard lantern 9')).access_token).toBeTruthy();
    expect(await server.tokens.peek('magic-link', link)).toBeNull();
  });
});

describe('deleting', () => {
  it('is for admins only; it revokes the user\'s tokens', async () => {
    const u = await makeUser();
    const session = await login(u.username);
    await expectProblem(await call('DELETE', `/api/users/${u.id}`, t.staff), 403, 'FORBIDDEN');
    await expectProblem(await call('DELETE', `/api/users/${u.id}`, t.user), 403, 'FORBIDDEN');
    expect((await read(u.id)).id).toBe(u.id);

    expect((await call('DELETE', `/api/users/${u.id}`, t.admin)).status).toBe(204);
    await expectProblem(await call('GET', `/api/users/${u.id}`, t.admin), 404, 'USER_NOT_FOUND');
    expect((await call('GET', '/api/me', session.access_token)).status).toBe(401);
    expect((await call('POST', '/api/auth/refresh', undefined, { refresh_token: session.refresh_token })).status).toBe(400);
    expect((await call('POST', '/api/auth/login', undefined, { username: u.username, password: PASSWORD })).status).toBe(401);
    await expectProblem(await call('DELETE', `/api/users/${u.id}`, t.admin), 404, 'USER_NOT_FOUND');
  });
});

describe('the last active admin', () => {
  const refusals: [string, string, () => unknown][] = [
    ['PATCH', 'demote', () => ({ isAdmin: false })],
    ['PATCH', 'disable', () => ({ active: false })],
    ['PUT', 'demote', () => ({ email: 'x@example.com', isAdmin: false })],
    ['DELETE', 'delete', () => undefined],
  ];

  it.each(refusals)('cannot be changed by %s (%s): 409 LAST_ADMIN', async (method, _what, body) => {
    const before = await read(ids.admin);
    await expectProblem(await call(method, `/api/users/${ids.admin}`, t.admin, body()), 409, 'LAST_ADMIN');
    expect(await read(ids.admin)).toEqual(before);
  });

  it('cannot delete their own account either (DELETE /api/me): 409 LAST_ADMIN, still signed in', async () => {
    const before = await read(ids.admin);
    await expectProblem(await call('DELETE', '/api/me', t.admin, { currentPassword: PASSWORD }), 409, 'LAST_ADMIN');
    expect(await read(ids.admin)).toEqual(before);
    expect((await call('GET', '/api/me', t.admin)).status).toBe(200);
  });

  it('cannot be demoted by an admin service either', async () => {
    const service = await serviceToken();
    await expectProblem(await call('PATCH', `/api/users/${ids.admin}`, service, { isAdmin: false }), 409, 'LAST_ADMIN');
    await expectProblem(await call('DELETE', `/api/users/${ids.admin}`, service), 409, 'LAST_ADMIN');
  });

  it('two concurrent demotions cannot leave no active admin', async () => {
    const service = await serviceToken();
    // The guard must hold under concurrency (a check-then-write race shows on PostgreSQL).
    const rounds: { admins: number; statuses: number[] }[] = [];
    for (let round = 0; round < 5; round += 1) {
      const other = await makeUser({ isAdmin: true, isStaff: true });
      const results = await Promise.all([
        call('PATCH', `/api/users/${ids.admin}`, service, { isAdmin: false }),
        call('PATCH', `/api/users/${other.id}`, service, { active: false }),
      ]);
      rounds.push({ admins: await server.prisma.user.count({ where: { isAdmin: true, active: true } }), statuses: results.map((r) => r.status).sort() });
      // Repair, so that the next round and the tests below keep their admin.
      await server.prisma.user.update({ where: { id: ids.admin }, data: { isAdmin: true } });
      await server.prisma.user.update({ where: { id: other.id }, data: { isAdmin: false, active: false } });
    }
    expect(rounds).toEqual(Array(5).fill({ admins: 1, statuses: [200, 409] }));
  });

  it('can be demoted, disabled and deleted once there is a second active admin', async () => {
    const second = await makeUser();
    expect((await call('PATCH', `/api/users/${second.id}`, t.admin, { isAdmin: true })).status).toBe(200);
    const secondToken = (await login(second.username)).access_token;

    // The second admin demotes the first; now the second is the last one and cannot leave.
    expect((await json(await call('PATCH', `/api/users/${ids.admin}`, secondToken, { isAdmin: false }))).isAdmin).toBe(false);
    expect((await call('GET', '/api/settings', t.admin)).status).toBe(403);
    await expectProblem(await call('DELETE', `/api/users/${second.id}`, secondToken), 409, 'LAST_ADMIN');
    expect((await call('PATCH', `/api/users/${ids.admin}`, secondToken, { isAdmin: true })).status).toBe(200);

    // A disabled admin does not count as one.
    expect((await json(await call('PATCH', `/api/users/${second.id}`, t.admin, { active: false }))).active).toBe(false);
    expect((await call('GET', '/api/me', secondToken)).status).toBe(401);
    await expectProblem(await call('PATCH', `/api/users/${ids.admin}`, t.admin, { isAdmin: false }), 409, 'LAST_ADMIN');
    expect((await call('DELETE', `/api/users/${second.id}`, t.admin)).status).toBe(204);
    expect((await call('GET', `/api/users/${second.id}`, t.admin)).status).toBe(404);
  });
});
