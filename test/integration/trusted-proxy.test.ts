import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../support/server.js';

// Behind proxies that append the address they saw to X-Forwarded-For, only the entries they added
// can be trusted: whatever is further left, the client wrote. The per-IP login limit must count the
// address the nearest proxy saw, however the client fills the header.
let server: TestServer;
beforeAll(async () => {
  server = await startTestServer({ TRUST_PROXY: 'true', LOGIN_MAX_FAILURES_PER_IP: '3', LOGIN_MAX_FAILURES_PER_ACCOUNT: '100' });
});
afterAll(() => server?.stop());

const login = (forwardedFor: string, username: string) =>
  fetch(`${server.url}/api/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-forwarded-for': forwardedFor },
    body: JSON.stringify({ username, password: 'not the password' }),
  });

describe('TRUST_PROXY', () => {
  it('throttles by the address the proxy saw, not by one the client wrote before it', async () => {
    for (let i = 0; i < 3; i += 1) expect((await login(`10.0.0.${i}, 203.0.113.7`, `user${i}@example.com`)).status).toBe(401);
    expect((await login('10.0.0.99, 203.0.113.7', 'other@example.com')).status).toBe(429);
    // Another client behind the same proxy is not held back.
    expect((await login('10.0.0.1, 203.0.113.8', 'other@example.com')).status).toBe(401);
  });
});
