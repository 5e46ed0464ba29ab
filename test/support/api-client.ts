import * as oidc from 'openid-client';
import { expect } from 'vitest';
import { PASSWORD, REDIRECT_URI, relyingParty } from './oidc.js';
import type { TestServer } from './server.js';

export type ApiTokens = { access_token: string; refresh_token: string; expires_in: number };
export type ApiApp = { clientId: string; clientSecret: string; name: string; ownerId: string | null };
export type UserFlags = { isAdmin?: boolean; isStaff?: boolean; isDeveloper?: boolean };

/**
 * Helpers for the management API (/api) of the server that `getServer` returns (a getter, since
 * test files assign their server in beforeAll). `user` holds fields every made user gets (e.g. a
 * givenName); `expectBearerChallenge` makes expectProblem also check a 401's WWW-Authenticate.
 */
export function createApiClient(getServer: () => TestServer, options: { user?: Record<string, string>; expectBearerChallenge?: boolean } = {}) {
  let seq = 0;
  /** A fresh number of this client's counter (which `unique` also advances). */
  const next = () => ++seq;
  const unique = (prefix: string) => `${prefix}${next()}x${Date.now().toString(36)}`;

  /** One JSON request; a string body is sent as it is (for malformed JSON). Never a 5xx. */
  async function call(method: string, path: string, token?: string, body?: unknown) {
    const res = await fetch(`${getServer().url}${path}`, {
      method,
      headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
    });
    expect(res.status, `${method} ${path} must never answer 5xx`).toBeLessThan(500);
    return res;
  }
  const json = async (res: Response) => (await res.json()) as Record<string, any>;

  async function expectProblem(res: Response, status: number, code: string) {
    expect(res.status, await res.clone().text()).toBe(status);
    expect(res.headers.get('content-type')).toContain('application/problem+json');
    expect((await json(res)).code).toBe(code);
    if (options.expectBearerChallenge && status === 401) expect(res.headers.get('www-authenticate')).toMatch(/^Bearer /);
  }

  async function login(username: string, password = PASSWORD) {
    const res = await call('POST', '/api/auth/login', undefined, { username, password });
    expect(res.status, await res.clone().text()).toBe(200);
    return (await res.json()) as ApiTokens;
  }

  async function makeUser(flags: UserFlags = {}, extra: Record<string, string> = {}) {
    const server = getServer();
    const username = unique('u');
    const user = await server.users.create({ email: `${username}@example.com`, username, password: PASSWORD, ...options.user, emailVerified: true, isAdmin: flags.isAdmin, isStaff: flags.isStaff, ...extra });
    if (flags.isDeveloper) await server.prisma.user.update({ where: { id: user.id }, data: { isDeveloper: true } });
    return { ...user, username };
  }

  /** An app of the owner of `token`, with a unique name unless `extra` names it. */
  async function makeApp(token: string, extra: Record<string, unknown> = {}): Promise<ApiApp> {
    const res = await call('POST', '/api/apps', token, { name: unique('App '), redirectUris: [REDIRECT_URI], grantTypes: ['authorization_code', 'refresh_token', 'client_credentials'], ...extra });
    expect(res.status, await res.clone().text()).toBe(201);
    return (await res.json()) as ApiApp;
  }
  async function makeKey(appId: string, token?: string) {
    const res = await call('POST', `/api/apps/${appId}/api-keys`, token);
    expect(res.status).toBe(201);
    return ((await res.json()) as { key: string }).key;
  }

  /** A client registered with the latch:admin scope, and its client-credentials token. */
  async function serviceClient(name = unique('Robot ')) {
    const server = getServer();
    const robot = await server.clients.create({ name, grantTypes: ['client_credentials'], scopes: ['latch:admin'] });
    const token = (await oidc.clientCredentialsGrant(await relyingParty(server, robot), { scope: 'latch:admin' })).access_token;
    return { token, clientId: robot.clientId, client: robot };
  }

  return { next, unique, call, json, expectProblem, login, makeUser, makeApp, makeKey, serviceClient };
}
