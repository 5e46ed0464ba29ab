import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../support/server.js';
import { PASSWORD, authorizationRequest, relyingParty, seed } from '../support/oidc.js';
import { createUserAgent } from '../support/user-agent.js';

let server: TestServer;
let fixtures: Awaited<ReturnType<typeof seed>>;

beforeAll(async () => {
  server = await startTestServer({ LOGIN_MAX_FAILURES_PER_ACCOUNT: '3', LOGIN_MAX_FAILURES_PER_IP: '6' });
  fixtures = await seed(server);
});
afterAll(() => server?.stop());

async function attempt(login: string, password: string) {
  const rp = await relyingParty(server, fixtures.confidential);
  const agent = createUserAgent();
  const page = await agent.navigate((await authorizationRequest(rp)).url);
  return agent.submit(page, '/login', { login, password });
}

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
});
