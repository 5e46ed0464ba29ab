import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../support/server.js';

// Behind a TLS-terminating proxy the server sees plain http and whatever Host the proxy passes on;
// what it says about itself must still come from PUBLIC_URL alone.
let server: TestServer;
beforeAll(async () => {
  server = await startTestServer({ PUBLIC_URL: 'https://id.example.test' });
});
afterAll(() => server?.stop());

/** A request with a Host header of the caller's choosing (fetch does not let one be set). */
function get(path: string, headers: Record<string, string>) {
  const { port } = new URL(server.url);
  return new Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (chunk: string) => (body += chunk)).on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.on('error', reject).end();
  });
}

describe('PUBLIC_URL is the only origin the server speaks of', () => {
  it('names its endpoints under PUBLIC_URL whatever Host or X-Forwarded-* say', async () => {
    const tries: Record<string, string>[] = [{ host: 'evil.example' }, { host: '127.0.0.1:8080', 'x-forwarded-proto': 'http', 'x-forwarded-host': 'evil.example' }];
    for (const headers of tries) {
      const res = await get('/o/.well-known/openid-configuration', headers);
      expect(res.status).toBe(200);
      const discovery = JSON.parse(res.body) as Record<string, unknown>;
      expect(discovery.issuer).toBe('https://id.example.test/o');
      const urls = Object.values(discovery).filter((v): v is string => typeof v === 'string' && /^https?:/.test(v));
      expect(urls.length).toBeGreaterThan(5);
      for (const url of urls) expect(url).toMatch(/^https:\/\/id\.example\.test\/o(\/|$)/);
    }
  });

  it('sets Secure cookies over the proxy\'s plain http instead of failing', async () => {
    const res = await get('/account/login', { host: 'id.example.test' });
    expect(res.status).toBe(303);
    const cookies = ([] as string[]).concat(res.headers['set-cookie'] ?? []);
    expect(cookies.length).toBeGreaterThan(0);
    for (const cookie of cookies) expect(cookie).toMatch(/;\s*secure/i);
    expect(res.headers.location).toMatch(/^https:\/\/id\.example\.test\/o\/auth\?/);
  });
});
