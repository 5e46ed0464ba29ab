import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import SwaggerParser from '@apidevtools/swagger-parser';
import type { OpenAPIV3_1 } from 'openapi-types';
import { startTestServer, type TestServer } from '../support/server.js';
import { PASSWORD } from '../support/oidc.js';
import { passwordHashCpuSeconds } from '../../src/passwords/passwords.js';

const SERVICE_TOKEN = 'service-token-0123456789';
const METRICS_TOKEN = 'metrics-token-0123456789';
let server: TestServer;

beforeAll(async () => {
  server = await startTestServer({ SERVICE_API_TOKEN: SERVICE_TOKEN, SERVICE_API_TOKEN_HEADER: 'X-Status-Key', METRICS_TOKEN, HOME_URL: 'https://example.com/home' });
  await server.users.create({ email: 'ops@example.com', password: PASSWORD });
});
afterAll(() => server?.stop());

describe('operations endpoints', () => {
  it('GET / redirects to HOME_URL', async () => {
    const res = await fetch(`${server.url}/`, { redirect: 'manual' });
    expect(res.status).toBe(302);
    expect(res.headers.get('location')).toBe('https://example.com/home');
  });

  it('/api/status answers only with the service token in the configured header', async () => {
    expect((await fetch(`${server.url}/api/status`)).status).toBe(401);
    expect((await fetch(`${server.url}/api/status`, { headers: { 'X-Status-Key': 'wrong' } })).status).toBe(401);
    const res = await fetch(`${server.url}/api/status`, { headers: { 'x-status-key': SERVICE_TOKEN } });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ status: 'ok', service: 'latch', version: expect.any(String) });
    // Documented with the header it reads, so the interactive docs can call it.
    const doc = (await (await fetch(`${server.url}/api/openapi.json`)).json()) as OpenAPIV3_1.Document;
    expect(doc.paths!['/api/status']!.get!.security).toEqual([{ serviceToken: [] }]);
    expect(doc.components!.securitySchemes!.serviceToken).toMatchObject({ type: 'apiKey', in: 'header', name: 'X-Status-Key' });
    expect(Object.keys(doc.paths!['/api/status']!.get!.responses!)).toEqual(expect.arrayContaining(['200', '401']));
  });

  it('/healthz and /readyz report the process and the database with its migrations', async () => {
    expect(await (await fetch(`${server.url}/healthz`)).json()).toEqual({ status: 'ok' });
    expect(await (await fetch(`${server.url}/readyz`)).json()).toEqual({ status: 'ok' });
    // A migration recorded as not applied makes the instance unready.
    const [first] = await server.prisma.$queryRawUnsafe<{ name: string }[]>('SELECT name FROM _latch_migrations ORDER BY name');
    await server.prisma.$executeRawUnsafe(`DELETE FROM _latch_migrations WHERE name = '${first!.name}'`);
    const unready = await fetch(`${server.url}/readyz`);
    expect(unready.status).toBe(503);
    expect(await unready.json()).toMatchObject({ reason: 'migrations pending', pending: [first!.name] });
    await server.prisma.$executeRawUnsafe(`INSERT INTO _latch_migrations (name, applied_at) VALUES ('${first!.name}', 'x')`);
  });

  it('/metrics needs the token and counts requests per route, logins, issued tokens and the hashes\' CPU', async () => {
    expect((await fetch(`${server.url}/metrics`)).status).toBe(401);
    await fetch(`${server.url}/api/auth/login`, { method: 'POST', body: JSON.stringify({ username: 'ops@example.com', password: PASSWORD }), headers: { 'content-type': 'application/json' } });
    await fetch(`${server.url}/api/auth/login`, { method: 'POST', body: JSON.stringify({ username: 'ops@example.com', password: 'nope' }), headers: { 'content-type': 'application/json' } });
    const res = await fetch(`${server.url}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(text).toMatch(/latch_http_requests_total\{method="POST",route="\/api\/auth\/login",status="200"\} 1/);
    expect(text).toMatch(/latch_http_request_duration_seconds_bucket\{le="0.5",method="POST",route="\/api\/auth\/login"\} \d/);
    expect(text).toMatch(/latch_logins_total\{result="success"\} 1/);
    expect(text).toMatch(/latch_logins_total\{result="invalid_credentials"\} 1/);
    expect(text).toMatch(/latch_tokens_issued_total\{grant_type="password"\} 1/);
    expect(text).not.toMatch(/route="\/interaction\/[A-Za-z0-9_-]{10,}/);
    // The hashes' CPU, counted by the threads that computed them (with Latch's argon2 build, which
    // npm install makes): some of the process's CPU, and more after another sign-in.
    const metric = (body: string, name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(body)?.[1]);
    const hashed = metric(text, 'latch_password_hash_cpu_seconds_total');
    if (passwordHashCpuSeconds() === undefined) expect(text).not.toMatch(/latch_password_hash_cpu_seconds_total/);
    else {
      expect(hashed).toBeGreaterThan(0);
      expect(hashed).toBeLessThan(metric(text, 'latch_process_cpu_seconds_total'));
    }
    await fetch(`${server.issuer}/.well-known/openid-configuration`);
    const again = await (await fetch(`${server.url}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } })).text();
    expect(again).toMatch(/latch_http_requests_total\{method="GET",route="\/o\/.well-known\/openid-configuration",status="200"\} 1/);
    await fetch(`${server.url}/api/auth/login`, { method: 'POST', body: JSON.stringify({ username: 'ops@example.com', password: PASSWORD }), headers: { 'content-type': 'application/json' } });
    const later = await (await fetch(`${server.url}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } })).text();
    if (passwordHashCpuSeconds() !== undefined) expect(metric(later, 'latch_password_hash_cpu_seconds_total')).toBeGreaterThan(hashed);
  });
});

describe('API documentation', () => {
  it('is a valid OpenAPI 3.1 document listing every /api route with its request schema', async () => {
    const doc = (await (await fetch(`${server.url}/api/openapi.json`)).json()) as OpenAPIV3_1.Document;
    expect(doc.openapi).toBe('3.1.0');
    await SwaggerParser.validate(structuredClone(doc) as never);

    const documented = Object.entries(doc.paths!).flatMap(([path, ops]) => Object.keys(ops!).map((m) => `${m.toUpperCase()} ${path}`));
    for (const route of ['POST /api/auth/login', 'GET /api/me', 'PATCH /api/users/{id}', 'POST /api/apps/{id}/api-keys', 'PATCH /api/settings', 'GET /api/audit']) {
      expect(documented).toContain(route);
    }
    // Each route's body schema is the one that validates it: the login body requires a password.
    const login = doc.paths!['/api/auth/login']!.post!.requestBody as OpenAPIV3_1.RequestBodyObject;
    const schema = login.content['application/json']!.schema as OpenAPIV3_1.SchemaObject;
    expect(schema.required).toContain('password');
    expect(Object.keys(login.content)).toContain('application/x-www-form-urlencoded');
  });

  it('documents exactly the routes the server answers (no 404 for a documented path)', async () => {
    const doc = (await (await fetch(`${server.url}/api/openapi.json`)).json()) as OpenAPIV3_1.Document;
    for (const [path, ops] of Object.entries(doc.paths!)) {
      for (const method of Object.keys(ops!)) {
        const res = await fetch(`${server.url}${path.replace(/\{\w+\}/g, 'x')}`, { method: method.toUpperCase(), headers: { 'content-type': 'application/json' }, body: method === 'get' ? undefined : '{}' });
        expect([400, 401, 403, 404].includes(res.status) ? res.headers.get('content-type') : 'ok', `${method} ${path}`).toMatch(/problem\+json|ok/);
        expect(res.status, `${method} ${path}`).toBeLessThan(500);
      }
    }
  });

  it('sends pages the document security headers and JSON answers the API set, keeping what a route set', async () => {
    const page = await fetch(`${server.url}/forgot-password`);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    expect(page.headers.get('content-security-policy')).toContain("default-src 'self'");
    expect(page.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
    expect(page.headers.get('referrer-policy')).toBe('same-origin');
    expect(page.headers.get('cross-origin-opener-policy')).toBe('same-origin');
    expect(page.headers.get('x-content-type-options')).toBe('nosniff');
    expect(page.headers.get('strict-transport-security')).toMatch(/^max-age=\d+/);
    // A page reached from an emailed link keeps its own no-referrer policy.
    expect((await fetch(`${server.url}/reset-password?token=x`)).headers.get('referrer-policy')).toBe('no-referrer');
    // The API docs keep their own CSP (Swagger UI needs inline styles).
    expect((await fetch(`${server.url}/api/docs`)).headers.get('content-security-policy')).toContain("style-src 'self' 'unsafe-inline'");

    for (const res of [await fetch(`${server.issuer}/.well-known/openid-configuration`), await fetch(`${server.url}/api/users`)]) {
      expect(res.headers.get('content-type')).toMatch(/json/);
      expect(res.headers.get('content-security-policy')).toBe("default-src 'none';frame-ancestors 'none'");
      expect(res.headers.get('x-content-type-options')).toBe('nosniff');
      expect(res.headers.get('x-frame-options')).toBe('DENY');
      expect(res.headers.get('strict-transport-security')).toMatch(/^max-age=\d+/);
      expect(res.headers.get('referrer-policy')).toBeNull();
      expect(res.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    }
    // A request id the caller sent is echoed back.
    expect((await fetch(`${server.url}/healthz`, { headers: { 'x-request-id': 'trace-42' } })).headers.get('x-request-id')).toBe('trace-42');
  });

  it('serves interactive docs from the swagger-ui-dist package, not a CDN', async () => {
    const page = await (await fetch(`${server.url}/api/docs`)).text();
    expect(page).toContain('/api/docs/swagger-ui-bundle.js');
    expect(page).not.toMatch(/https?:\/\//);
    const bundle = await fetch(`${server.url}/api/docs/swagger-ui-bundle.js`);
    expect(bundle.status).toBe(200);
    expect((await bundle.text()).length).toBeGreaterThan(100_000);
    expect((await fetch(`${server.url}/static/api-docs.js`)).status).toBe(200);
  });

  it('answers unknown API paths, /api itself included, with a problem document', async () => {
    for (const path of ['/api', '/api/', '/api/nope']) {
      const res = await fetch(`${server.url}${path}`);
      expect(res.status, path).toBe(404);
      expect(res.headers.get('content-type'), path).toMatch(/problem\+json/);
    }
  });

  it('documents the error statuses operations answer: 404 for a resource, 409 for a conflict, 413 for a body, 429 for a throttle', async () => {
    const doc = (await (await fetch(`${server.url}/api/openapi.json`)).json()) as { paths: Record<string, Record<string, { responses: Record<string, unknown> }>> };
    const statuses = (path: string, method: string) => Object.keys(doc.paths[path]![method]!.responses);
    expect(statuses('/api/users/{id}', 'get')).toContain('404');
    expect(statuses('/api/users/{id}', 'delete')).toEqual(expect.arrayContaining(['404', '409']));
    expect(statuses('/api/apps', 'post')).toEqual(expect.arrayContaining(['409', '413', '415']));
    expect(statuses('/api/auth/login', 'post')).toEqual(expect.arrayContaining(['401', '403', '429']));
    expect(statuses('/api/auth/register', 'post')).toEqual(expect.arrayContaining(['403', '409', '429']));
    expect(statuses('/api/auth/forgot-password', 'post')).toContain('429');
  });

  it('reads a form body only where documented (sign-in): elsewhere 415, as the document says', async () => {
    const form = (path: string, body: string) => fetch(`${server.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body });
    const refused = await form('/api/auth/register', 'email=form%40example.com&password=violet+harbour+lantern+4');
    expect(refused.status).toBe(415);
    expect((await refused.json()).code).toBe('UNSUPPORTED_MEDIA_TYPE');
    expect((await form('/api/auth/login', `username=form-user&password=${encodeURIComponent(PASSWORD)}`)).status).not.toBe(415);
  });

  it("documents registration's field rules as the server applies them", async () => {
    const doc = (await (await fetch(`${server.url}/api/openapi.json`)).json()) as { paths: Record<string, Record<string, { requestBody: { content: Record<string, { schema: { properties: Record<string, { maxLength?: number; pattern?: string }> } }> } }>> };
    const fields = doc.paths['/api/auth/register']!.post!.requestBody.content['application/json']!.schema.properties;
    expect(fields.username).toMatchObject({ maxLength: 64, pattern: expect.any(String) });
    expect(fields.name).toMatchObject({ maxLength: 200 });
  });

  it('answers 404, not 500, for a docs file named like a property every object has', async () => {
    for (const name of ['constructor', '__proto__', 'toString', 'hasOwnProperty']) {
      const res = await fetch(`${server.url}/api/docs/${name}`);
      expect(res.status, name).toBe(404);
      expect(await res.json(), name).toMatchObject({ code: 'NOT_FOUND' });
    }
  });
});

describe('shutdown', () => {
  it('answers the requests under way before it stops, and takes no new ones', async () => {
    // A slow hash keeps the sign-in under way while the server is told to stop.
    const stopping = await startTestServer({ ARGON2_TIME_COST: '1000' });
    await stopping.users.create({ email: 'drain@example.com', password: PASSWORD });
    const login = fetch(`${stopping.url}/api/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'drain@example.com', password: PASSWORD }) });
    await new Promise((r) => setTimeout(r, 100));
    const stopped = stopping.stop();
    const answer = await login;
    expect(answer.status).toBe(200);
    expect((await answer.json()).access_token).toBeTruthy();
    await stopped;
    await expect(fetch(`${stopping.url}/healthz`)).rejects.toThrow();
  });
});
