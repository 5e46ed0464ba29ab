import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as oidc from 'openid-client';
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import { loadConfig } from '../../src/config/env.js';
import { createLogger, type DepsOptions } from '../../src/deps.js';
import type { Db } from '../../src/db/prisma.js';
import { startServer, type RunningServer } from '../../src/server.js';
import { rotateSigningKeys } from '../../src/keys/signing-keys.js';
import { CLIENT_CACHE_MS } from '../../src/oidc/adapter.js';
import { TOKEN_CACHE_MS } from '../../src/db/token-cache.js';
import { createTestDatabase } from '../support/database.js';
import { freePort } from '../support/server.js';
import { PASSWORD, REDIRECT_URI, authorizationRequest, signIn } from '../support/oidc.js';
import { createUserAgent } from '../support/user-agent.js';

// Two instances on one database, as behind a load balancer without sticky sessions: both answer
// for the same public URL (instance A's), and requests are steered to one or the other.
let db: Awaited<ReturnType<typeof createTestDatabase>>;
let a: RunningServer;
let b: RunningServer;
let publicUrl: string;
let client: { clientId: string; clientSecret?: string };

async function start(port: number, options: DepsOptions = {}) {
  const config = loadConfig({
    NODE_ENV: 'test',
    HOST: '127.0.0.1',
    PORT: String(port),
    PUBLIC_URL: publicUrl,
    DATABASE_URL: db.url,
    LOG_LEVEL: 'silent',
    ARGON2_MEMORY_KIB: '1024',
    ARGON2_TIME_COST: '1',
    KEY_REFRESH_INTERVAL: '1',
  });
  return startServer(config, createLogger(config), options);
}

/** openid-client against the shared issuer, with every request sent to one chosen instance. */
async function rpVia(instance: RunningServer) {
  const target = new URL(instance.url);
  const steer: oidc.CustomFetch = (input, init) => {
    const url = new URL(input);
    url.host = target.host;
    return fetch(url, init as RequestInit);
  };
  const config = await oidc.discovery(new URL(`${publicUrl}/o`), client.clientId, undefined, oidc.ClientSecretBasic(client.clientSecret!), {
    execute: [oidc.allowInsecureRequests],
    [oidc.customFetch]: steer,
  });
  config[oidc.customFetch] = steer;
  return config;
}
const via = (instance: RunningServer, url: string) => url.replace(publicUrl, instance.url);

beforeAll(async () => {
  db = await createTestDatabase();
  const [portA, portB] = [await freePort(), await freePort()];
  publicUrl = `http://127.0.0.1:${portA}`;
  // One after the other: in one process, SQLite's busy wait cannot yield to a lock held by the same
  // thread. (Processes starting together are tested in cli.test.ts.)
  a = await start(portA);
  b = await start(portB);
  await a.users.create({ email: 'sam@example.com', password: PASSWORD });
  client = await a.clients.create({ name: 'Both', redirectUris: [REDIRECT_URI], grantTypes: ['authorization_code', 'refresh_token', 'client_credentials'] });
});
afterAll(async () => {
  await a?.close();
  await b?.close();
  await db?.drop();
});

describe('two instances, one database', () => {
  it('redeem at one a code issued by the other, and refresh at either', async () => {
    const flow = await signIn(await rpVia(a), { login: 'sam@example.com' });
    const rpB = await rpVia(b);
    const tokens = await oidc.authorizationCodeGrant(rpB, new URL(flow.callbackUrl), { pkceCodeVerifier: flow.request.verifier, expectedState: flow.request.state, expectedNonce: flow.request.nonce });
    const refreshed = await oidc.refreshTokenGrant(await rpVia(a), tokens.refresh_token!);
    expect((await oidc.tokenIntrospection(rpB, refreshed.access_token)).active).toBe(true);
  });

  it('honour at one a sign-in session made at the other', async () => {
    const agent = createUserAgent();
    await signIn(await rpVia(a), { login: 'sam@example.com', agent });
    // The same browser (cookies are per host, not port) asks instance B: no login page this time.
    const request = await authorizationRequest(await rpVia(a));
    const page = await agent.navigate(via(b, request.url), {}, REDIRECT_URI);
    expect(page.url.startsWith(REDIRECT_URI)).toBe(true);
    expect(new URL(page.url).searchParams.get('code')).toBeTruthy();
  });

  it('publish a key rotated through one at the other without a restart, before either signs with it; older tokens still verify', async () => {
    const rpA = await rpVia(a);
    const before = (await (await signIn(rpA, { login: 'sam@example.com' })).tokens()).id_token!;
    const { kids } = await rotateSigningKeys(a.prisma, 3600, 1);

    // The rotation went to the database behind both processes' backs: each publishes it on its own
    // key refresh, within KEY_REFRESH_INTERVAL, and signs with it only once both have had the time
    // to publish it, so a token from either always verifies against the JWKS of either.
    const kidsAt = async (server: RunningServer) => ((await (await fetch(`${server.url}/o/jwks`)).json()) as { keys: { kid: string }[] }).keys.map((k) => k.kid);
    const idToken = async (server: RunningServer) => {
      const res = await fetch(`${server.url}/api/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'sam@example.com', password: PASSWORD }) });
      return ((await res.json()) as { id_token: string }).id_token;
    };
    const signedWithNew = new Set<RunningServer>();
    let after = '';
    for (let i = 0; i < 80 && signedWithNew.size < 2; i += 1) {
      const published = [await kidsAt(a), await kidsAt(b)];
      for (const server of [a, b]) {
        const token = await idToken(server);
        if (!kids.includes(decodeProtectedHeader(token).kid!)) continue;
        for (const jwks of published) expect(jwks).toEqual(expect.arrayContaining([...kids, decodeProtectedHeader(before).kid]));
        signedWithNew.add(server);
        after = token;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(signedWithNew.size).toBe(2);

    const jwks = createRemoteJWKSet(new URL(`${a.url}/o/jwks`));
    await jwtVerify(before, jwks);
    await jwtVerify(after, jwks);
  });

  it('publish a rotation at an instance whose reload of the keys failed once, at its next check', async () => {
    let failNext = false;
    const flaky = (db: Db) =>
      db.$extends({
        query: {
          signingKey: {
            async deleteMany({ args, query }) {
              if (!failNext) return query(args);
              failNext = false;
              throw new Error('connection lost');
            },
          },
        },
      }) as unknown as Db;
    const c = await start(await freePort(), { instrumentDb: flaky });
    try {
      failNext = true;
      const { kids } = await rotateSigningKeys(a.prisma, 3600, 1);
      let published: string[] = [];
      for (let i = 0; i < 50 && !kids.every((k) => published.includes(k)); i += 1) {
        await new Promise((r) => setTimeout(r, 100));
        published = ((await (await fetch(`${c.url}/o/jwks`)).json()) as { keys: { kid: string }[] }).keys.map((k) => k.kid);
      }
      expect(failNext).toBe(false);
      expect(published).toEqual(expect.arrayContaining(kids));
    } finally {
      await c.close();
    }
  });

  it('switch to a rotated key at an instance that started while the key activated', async () => {
    const { kids } = await rotateSigningKeys(a.prisma, 3600, 1);
    // Its start reads the keys, then (slowly, past the new keys' activation) the settings.
    let slow = true;
    const slowSettings = (db: Db) =>
      db.$extends({
        query: {
          setting: {
            async findMany({ args, query }) {
              if (slow) {
                slow = false;
                await new Promise((r) => setTimeout(r, 2500));
              }
              return query(args);
            },
          },
        },
      }) as unknown as Db;
    const c = await start(await freePort(), { instrumentDb: slowSettings });
    try {
      const kidAt = async () => {
        const res = await fetch(`${c.url}/api/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'sam@example.com', password: PASSWORD }) });
        return decodeProtectedHeader(((await res.json()) as { id_token: string }).id_token).kid!;
      };
      let kid = await kidAt();
      for (let i = 0; i < 30 && !kids.includes(kid); i += 1) {
        await new Promise((r) => setTimeout(r, 100));
        kid = await kidAt();
      }
      expect(kids).toContain(kid);
    } finally {
      await c.close();
    }
  });

  it('apply a client change made at one on the other within the cache bound', async () => {
    const secret = await a.clients.rotateSecret(client.clientId);
    const ok = async (instance: RunningServer, clientSecret: string) =>
      (await fetch(`${instance.url}/o/token`, {
        method: 'POST',
        headers: { authorization: `Basic ${Buffer.from(`${client.clientId}:${clientSecret}`).toString('base64')}`, 'content-type': 'application/x-www-form-urlencoded' },
        body: 'grant_type=client_credentials',
      })).status === 200;
    expect(await ok(a, secret)).toBe(true);
    await new Promise((r) => setTimeout(r, CLIENT_CACHE_MS + 100));
    expect(await ok(b, secret)).toBe(true);
    expect(await ok(b, client.clientSecret!)).toBe(false);
    client = { ...client, clientSecret: secret };
  });

  it('refuse at one, within the token cache bound, a token revoked at the other', async () => {
    const [rpA, rpB] = [await rpVia(a), await rpVia(b)];
    const { access_token } = await oidc.clientCredentialsGrant(rpA);
    // Both have read it (and keep it for the bound).
    expect((await oidc.tokenIntrospection(rpA, access_token)).active).toBe(true);
    expect((await oidc.tokenIntrospection(rpB, access_token)).active).toBe(true);
    await oidc.tokenRevocation(rpA, access_token);
    const revokedAt = Date.now();
    // At once where it was revoked.
    expect((await oidc.tokenIntrospection(rpA, access_token)).active).toBe(false);
    await expect.poll(async () => (await oidc.tokenIntrospection(rpB, access_token)).active, { timeout: TOKEN_CACHE_MS + 500, interval: 50 }).toBe(false);
    expect(Date.now() - revokedAt).toBeLessThanOrEqual(TOKEN_CACHE_MS + 500);
  });
});
