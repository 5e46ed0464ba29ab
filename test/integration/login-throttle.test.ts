import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../support/server.js';
import { PASSWORD, authorizationRequest, relyingParty, seed } from '../support/oidc.js';
import { createUserAgent } from '../support/user-agent.js';

let server: TestServer;
let fixtures: Awaited<ReturnType<typeof seed>>;

beforeAll(async () => {
  // Behind a proxy, so the concurrent attempts below can come from addresses of their own.
  server = await startTestServer({ LOGIN_MAX_FAILURES_PER_ACCOUNT: '3', LOGIN_MAX_FAILURES_PER_IP: '6', TRUST_PROXY: 'true' });
  fixtures = await seed(server);
});
afterAll(() => server?.stop());

async function attempt(login: string, password: string) {
  const rp = await relyingParty(server, fixtures.confidential);
  const agent = createUserAgent();
  const page = await agent.navigate((await authorizationRequest(rp)).url);
  return agent.submit(page, '/login', { login, password });
}

let lastIp = 0;
const newIp = () => `198.51.100.${(lastIp += 1)}`;
const api = (path: string, body: object, ip: string, token?: string) =>
  fetch(`${server.url}/api${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-forwarded-for': ip, ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify(body),
  });
const apiLogin = (username: string, password: string, ip: string) => api('/auth/login', { username, password }, ip);
/** How many answers had each status. */
const tally = (responses: Response[]) => responses.reduce<Record<number, number>>((t, r) => ({ ...t, [r.status]: (t[r.status] ?? 0) + 1 }), {});

describe('login throttling', () => {
  it('locks an account after repeated failures, even for the right password, with a clear message', async () => {
    // Failures by username and by email count together: they name one account.
    for (const login of ['ada', 'ada@example.com', 'ada']) expect((await attempt(login, 'wrong')).status).toBe(401);
    const locked = await attempt('ada', PASSWORD);
    expect(locked.status).toBe(429);
    expect(Number(locked.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(locked.html).toContain('Too many failed attempts');
    // The same account under another spelling, or by its email, is the same account.
    expect((await attempt('ADA', PASSWORD)).status).toBe(429);
    expect((await attempt('Ada@Example.com', PASSWORD)).status).toBe(429);
  });

  it('limits one IP address trying many accounts', async () => {
    // 3 failures above plus these 3 reach the per-IP limit of 6.
    for (const login of ['x1@example.com', 'x2@example.com', 'x3@example.com']) {
      expect((await attempt(login, 'wrong')).status).toBe(401);
    }
    await server.users.create({ email: 'fresh@example.com', password: PASSWORD });
    expect((await attempt('fresh@example.com', PASSWORD)).status).toBe(429);
  });

  // Every attempt takes its point before its password is hashed, so attempts made at once cannot
  // all pass one check (before, each of these bursts was hashed whole: only the next was refused).
  it('refuses concurrent wrong passwords past the account limit before hashing them, and the right one after them', async () => {
    await server.users.create({ email: 'burst@example.com', password: PASSWORD, emailVerified: true });
    // Each from an address of its own: only the account's limit (3) applies.
    const burst = await Promise.all(Array.from({ length: 12 }, () => apiLogin('burst@example.com', 'wrong', newIp())));
    expect(tally(burst)).toEqual({ 401: 3, 429: 9 });
    for (const refused of burst.filter((r) => r.status === 429)) expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
    expect((await apiLogin('burst@example.com', PASSWORD, newIp())).status).toBe(429);
  });

  it('holds one address to its limit across concurrent attempts on many accounts', async () => {
    await server.users.create({ email: 'spray@example.com', password: PASSWORD, emailVerified: true });
    const ip = newIp();
    const burst = await Promise.all([
      ...Array.from({ length: 12 }, (_, i) => apiLogin(`spray-${i}@example.com`, 'wrong', ip)),
      apiLogin('spray@example.com', PASSWORD, ip),
    ]);
    // At most 6 failures are hashed; a success among them gives its own point back, no more.
    const counts = tally(burst);
    expect(counts[401] ?? 0).toBeLessThanOrEqual(6);
    expect((counts[401] ?? 0) + (counts[200] ?? 0)).toBeLessThanOrEqual(7);
    expect(counts[429]).toBeGreaterThanOrEqual(6);
    // The success's point, held while it was checked, may have refused one more failure in the
    // burst; either way the address reaches exactly 6 failures, and nothing passes after them.
    let more = 0;
    for (let i = 0; i < 7; i += 1) {
      const status = (await apiLogin(`spray-more-${i}@example.com`, 'wrong', ip)).status;
      if (status === 401) more += 1;
      else expect(status).toBe(429);
    }
    expect((counts[401] ?? 0) + more).toBe(6);
    expect((await apiLogin('spray@example.com', PASSWORD, ip)).status).toBe(429);
    // Another address is not held back: the account has no failures (its refused attempts gave their points back).
    expect((await apiLogin('spray@example.com', PASSWORD, newIp())).status).toBe(200);
  });

  it('counts concurrent wrong current passwords as failed sign-ins of the account', async () => {
    await server.users.create({ email: 'owner@example.com', password: PASSWORD, emailVerified: true });
    const { access_token: token } = (await (await apiLogin('owner@example.com', PASSWORD, newIp())).json()) as { access_token: string };
    const change = (currentPassword: string) => api('/me/password', { currentPassword, newPassword: 'sunny plains garage 7' }, newIp(), token);
    expect(tally(await Promise.all(Array.from({ length: 8 }, () => change('wrong'))))).toEqual({ 400: 3, 429: 5 });
    expect((await change(PASSWORD)).status).toBe(429);
  });
});
