import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as oidc from 'openid-client';
import { startTestServer, type TestServer } from '../support/server.js';
import { PASSWORD, REDIRECT_URI, relyingParty, seed, signIn } from '../support/oidc.js';

// A refresh token or code sent twice at once: one request wins, the other is a replay and revokes
// the grant. The winner's tokens may be written after that revocation (held by its unit of work
// at /o/token, written one after another through /api/auth/*), so they outlive their grant; every
// resource server must refuse them anyway, /api as introspection does. The race is run a few
// rounds: how the two requests interleave differs from one to the next.

let server: TestServer;
let fixtures: Awaited<ReturnType<typeof seed>>;

beforeAll(async () => {
  server = await startTestServer();
  fixtures = await seed(server);
});
afterAll(() => server?.stop());

const ROUNDS = 4;

type Answer = { status: number; body: Record<string, string> };

async function post(url: string, body: string, headers: Record<string, string>): Promise<Answer> {
  const res = await fetch(url, { method: 'POST', body, headers });
  return { status: res.status, body: (await res.json()) as Record<string, string> };
}
const authApi = (path: string, body: Record<string, string>) => post(`${server.url}/api/auth/${path}`, JSON.stringify(body), { 'content-type': 'application/json' });
const basic = (c: { clientId: string; clientSecret?: string }) => `Basic ${Buffer.from(`${encodeURIComponent(c.clientId)}:${encodeURIComponent(c.clientSecret!)}`).toString('base64')}`;
const tokenEndpoint = (params: Record<string, string>) =>
  post(`${server.issuer}/token`, new URLSearchParams(params).toString(), { authorization: basic(fixtures.trusted), 'content-type': 'application/x-www-form-urlencoded' });
const meStatus = async (accessToken: string) => (await fetch(`${server.url}/api/me`, { headers: { authorization: `Bearer ${accessToken}` } })).status;

/** Sends the same grant `n` times at once: at most one wins, and every other request is refused. */
async function race(send: () => Promise<Answer>, n = 2) {
  const answers = await Promise.all(Array.from({ length: n }, send));
  const won = answers.filter((a) => a.status === 200);
  expect(won.length).toBeLessThanOrEqual(1);
  expect(answers.filter((a) => a.status === 400)).toHaveLength(n - won.length);
  return won[0];
}

/** The winner's access token is dead everywhere: /api agrees with introspection. */
async function expectRefused(accessToken: string) {
  expect(await meStatus(accessToken)).toBe(401);
  const rs = await relyingParty(server, fixtures.confidential);
  expect((await oidc.tokenIntrospection(rs, accessToken)).active).toBe(false);
}

describe('a replayed refresh token or code revokes the tokens the winning request got', () => {
  it('through /api/auth/refresh', async () => {
    let winners = 0;
    for (let round = 0; round < ROUNDS; round++) {
      const login = await authApi('login', { username: 'ada', password: PASSWORD });
      expect(login.status).toBe(200);
      expect(await meStatus(login.body.access_token!)).toBe(200);
      const winner = await race(() => authApi('refresh', { refresh_token: login.body.refresh_token! }));
      if (!winner) continue;
      winners += 1;
      await expectRefused(winner.body.access_token!);
      expect((await authApi('refresh', { refresh_token: winner.body.refresh_token! })).status).toBe(400);
    }
    expect(winners).toBeGreaterThan(0);
  });

  it('through /o/token, redeeming a code of a trusted client', async () => {
    const rp = await relyingParty(server, fixtures.trusted);
    let winners = 0;
    for (let round = 0; round < ROUNDS; round++) {
      const flow = await signIn(rp);
      const code = new URL(flow.callbackUrl).searchParams.get('code')!;
      const params = { grant_type: 'authorization_code', code, redirect_uri: REDIRECT_URI, code_verifier: flow.request.verifier };
      const winner = await race(() => tokenEndpoint(params));
      if (!winner) continue;
      winners += 1;
      await expectRefused(winner.body.access_token!);
    }
    expect(winners).toBeGreaterThan(0);
  });

  it('through /o/token, refreshing for a trusted client', async () => {
    const rp = await relyingParty(server, fixtures.trusted);
    let winners = 0;
    for (let round = 0; round < ROUNDS; round++) {
      const tokens = await (await signIn(rp)).tokens();
      expect(await meStatus(tokens.access_token)).toBe(200);
      const winner = await race(() => tokenEndpoint({ grant_type: 'refresh_token', refresh_token: tokens.refresh_token! }));
      if (!winner) continue;
      winners += 1;
      await expectRefused(winner.body.access_token!);
    }
    expect(winners).toBeGreaterThan(0);
  });
});
