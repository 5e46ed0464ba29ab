import { Agent, getGlobalDispatcher, setGlobalDispatcher } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/env.js';
import { createLogger } from '../../src/deps.js';
import { startServer, type RunningServer } from '../../src/server.js';
import { createTestDatabase } from '../support/database.js';
import { freePort } from '../support/server.js';
import { PASSWORD, REDIRECT_URI, authorizationRequest, relyingParty, signIn } from '../support/oidc.js';
import { createUserAgent } from '../support/user-agent.js';

// COOKIE_KEYS=new,old: the first key signs, every key verifies. The same server restarted with
// other keys, on the same address and database, as an operator rotating them would do it.
const OLD = 'old cookie key 0123456789abcdefghijklmnop';
const NEW = 'new cookie key 0123456789abcdefghijklmnop';

let db: Awaited<ReturnType<typeof createTestDatabase>>;
let port: number;
let running: RunningServer | undefined;
let client: { clientId: string; clientSecret?: string };

async function restartWith(cookieKeys: string) {
  await running?.close();
  // fetch keeps idle connections to the server just closed, on the same address: one taken for
  // the next request before its close was seen failed it with "other side closed". New ones.
  const stale = getGlobalDispatcher();
  setGlobalDispatcher(new Agent());
  await stale.close();
  const config = loadConfig({
    NODE_ENV: 'test',
    HOST: '127.0.0.1',
    PORT: String(port),
    PUBLIC_URL: `http://127.0.0.1:${port}`,
    DATABASE_URL: db.url,
    LOG_LEVEL: 'silent',
    ARGON2_MEMORY_KIB: '1024',
    ARGON2_TIME_COST: '1',
    COOKIE_KEYS: cookieKeys,
  });
  const started = await startServer(config, createLogger(config));
  running = started;
  return { ...started, issuer: config.oidc.issuer, stop: () => started.close() };
}

/** Whether this browser is still signed in: the app gets a code without a login page. */
async function signedIn(server: Awaited<ReturnType<typeof restartWith>>, agent: ReturnType<typeof createUserAgent>) {
  const request = await authorizationRequest(await relyingParty(server, client));
  const page = await agent.navigate(request.url, {}, REDIRECT_URI);
  return page.url.startsWith(REDIRECT_URI) && new URL(page.url).searchParams.has('code');
}

beforeAll(async () => {
  db = await createTestDatabase();
  port = await freePort();
  const server = await restartWith(OLD);
  await server.users.create({ email: 'kim@example.com', password: PASSWORD, emailVerified: true });
  client = await server.clients.create({ name: 'Rotation', redirectUris: [REDIRECT_URI], grantTypes: ['authorization_code'] });
});
afterAll(async () => {
  await running?.close();
  await db?.drop();
});

describe('cookie key rotation', () => {
  it('keeps browsers signed in through a rotation, and signs out those whose key was retired', async () => {
    let server = await restartWith(OLD);
    const rp = await relyingParty(server, client);
    const kept = (await signIn(rp, { login: 'kim@example.com' })).agent;
    const left = (await signIn(rp, { login: 'kim@example.com' })).agent;
    expect(await signedIn(server, kept)).toBe(true);

    // The new key signs and the old one still verifies: both browsers stay signed in; the one
    // that comes back has its cookies signed again with the new key.
    server = await restartWith(`${NEW},${OLD}`);
    expect(await signedIn(server, kept)).toBe(true);

    // The old key retired: the browser that came back meanwhile is still signed in; the other
    // one's cookies no longer verify, so it is asked to sign in again.
    server = await restartWith(NEW);
    expect(await signedIn(server, kept)).toBe(true);
    expect(await signedIn(server, left)).toBe(false);
    const again = await signIn(await relyingParty(server, client), { login: 'kim@example.com', agent: left });
    expect(again.callbackUrl).toContain('code=');
  });

  it('refuses a login form whose CSRF cookie was signed with a key no longer held', async () => {
    let server = await restartWith(OLD);
    const agent = createUserAgent();
    const request = await authorizationRequest(await relyingParty(server, client));
    const page = await agent.navigate(request.url);
    expect(page.html).toContain('name="_csrf"');
    server = await restartWith(NEW);
    const answer = await agent.submit(page, '/login', { login: 'kim@example.com', password: PASSWORD });
    expect(answer.status).toBe(403);
    expect(answer.html).toContain('This form expired');
  });
});
