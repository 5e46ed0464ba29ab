import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../support/server.js';
import { rawGet } from '../support/raw-http.js';

// Behind a TLS-terminating proxy the server sees plain http and whatever Host the proxy passes on;
// what it says about itself must still come from PUBLIC_URL alone.
let server: TestServer;
// The same behind a proxy it trusts: X-Forwarded-Host and -Proto would otherwise count there.
let proxied: TestServer;
beforeAll(async () => {
  [server, proxied] = await Promise.all([
    startTestServer({ PUBLIC_URL: 'https://id.example.test' }),
    startTestServer({ PUBLIC_URL: 'https://id.example.test', TRUST_PROXY: 'true' }),
  ]);
});
afterAll(() => Promise.all([server?.stop(), proxied?.stop()]));

describe('PUBLIC_URL is the only origin the server speaks of', () => {
  it('names its endpoints under PUBLIC_URL whatever Host or X-Forwarded-* say', async () => {
    const tries: [TestServer, Record<string, string>][] = [
      [server, { host: 'evil.example' }],
      [proxied, { host: '127.0.0.1:8080', 'x-forwarded-proto': 'http', 'x-forwarded-host': 'evil.example' }],
    ];
    for (const [target, headers] of tries) {
      const res = await rawGet(target.url, '/o/.well-known/openid-configuration', headers);
      expect(res.status).toBe(200);
      const discovery = JSON.parse(res.body) as Record<string, unknown>;
      expect(discovery.issuer).toBe('https://id.example.test/o');
      const urls = Object.values(discovery).filter((v): v is string => typeof v === 'string' && /^https?:/.test(v));
      expect(urls.length).toBeGreaterThan(5);
      for (const url of urls) expect(url).toMatch(/^https:\/\/id\.example\.test\/o(\/|$)/);
    }
  });

  it('sets Secure cookies over the proxy\'s plain http instead of failing', async () => {
    const res = await rawGet(server.url, '/account/login', { host: 'id.example.test' });
    expect(res.status).toBe(303);
    const cookies = ([] as string[]).concat(res.headers['set-cookie'] ?? []);
    expect(cookies.length).toBeGreaterThan(0);
    for (const cookie of cookies) expect(cookie).toMatch(/;\s*secure/i);
    expect(res.headers.location).toMatch(/^https:\/\/id\.example\.test\/o\/auth\?/);
  });
});
