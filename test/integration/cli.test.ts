import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import * as oidc from 'openid-client';
import { createRemoteJWKSet, decodeJwt, decodeProtectedHeader, jwtVerify } from 'jose';
import { createTestDatabase } from '../support/database.js';
import { freePort, startTestServer } from '../support/server.js';
import { latch, runNode } from '../support/cli.js';
import { PASSWORD, REDIRECT_URI, relyingParty, signIn } from '../support/oidc.js';

const run = promisify(execFile);
let db: Awaited<ReturnType<typeof createTestDatabase>>;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db?.drop());

describe('latch CLI', () => {
  it('migrates a new database and reports it up to date', async () => {
    const first = await latch(['migrate'], { databaseUrl: db.url });
    expect(first.stdout).toContain('applied: 0001_init');
    const status = await latch(['migrate', '--status'], { databaseUrl: db.url });
    expect(status.stdout.trim()).toBe('up to date');
  });

  it('runs as `npx latch` in a checkout, without npx installing the checkout into its cache', async () => {
    // Were the `latch` bin declared by the package itself, npx would install the checkout into its
    // cache (under _npx), running its install scripts again, instead of the link they made.
    const cache = await mkdtemp(join(tmpdir(), 'latch-npx-'));
    try {
      const { stdout } = await run('npx', ['latch', 'users', '--help'], {
        cwd: fileURLToPath(new URL('../..', import.meta.url)),
        env: { ...process.env, npm_config_cache: cache },
      });
      expect(stdout).toContain('Usage: latch users');
      expect(await readdir(cache)).not.toContain('_npx');
    } finally {
      await rm(cache, { recursive: true, force: true });
    }
  });

  it('refuses a password the registration policy refuses, creating nobody', async () => {
    const weak = await latch(['users', 'create', '--email', 'weak@example.com', '--admin', '--password-stdin'], { databaseUrl: db.url, stdin: 'Password1\n' });
    expect(weak.code).toBe(1);
    expect(weak.stderr).toContain('too easy to guess');
    const strong = await latch(['users', 'create', '--email', 'weak@example.com', '--password-stdin'], { databaseUrl: db.url, stdin: `${PASSWORD}\n` });
    expect(strong.code).toBe(0);
  });

  it('creates an admin who can then sign in, and refuses a second account with the same email', async () => {
    const created = await latch(['users', 'create', '--email', 'root@example.com', '--username', 'root', '--admin', '--password-stdin'], {
      databaseUrl: db.url,
      stdin: `${PASSWORD}\n`,
    });
    expect(created.code).toBe(0);
    expect(created.stdout).toMatch(/created admin user root@example.com/);

    const again = await latch(['users', 'create', '--email', 'ROOT@example.com', '--password-stdin'], { databaseUrl: db.url, stdin: PASSWORD });
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('An account with this email already exists');
  });

  it('asks for --password-stdin when there is no terminal', async () => {
    const res = await latch(['users', 'create', '--email', 'x@example.com'], { databaseUrl: db.url });
    expect(res.code).toBe(1);
    expect(res.stderr).toContain('--password-stdin');
  });

  it('registers clients that work against a running server, and lists them', async () => {
    const web = await latch(['clients', 'create', '--name', 'Web', '--redirect-uri', REDIRECT_URI, '--trusted', '--json'], { databaseUrl: db.url });
    const machine = await latch(['clients', 'create', '--name', 'Worker', '--grant-type', 'client_credentials', '--json'], { databaseUrl: db.url });
    const bad = await latch(['clients', 'create', '--name', 'Bad', '--redirect-uri', 'not a url'], { databaseUrl: db.url });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('redirectUris.0');

    const webClient = JSON.parse(web.stdout) as { client_id: string; client_secret: string };
    const worker = JSON.parse(machine.stdout) as { client_id: string; client_secret: string };
    const listed = JSON.parse((await latch(['clients', 'list', '--json'], { databaseUrl: db.url })).stdout) as { clientId: string; trusted: boolean }[];
    expect(listed.map((c) => c.clientId)).toEqual([webClient.client_id, worker.client_id]);
    expect(listed[0]!.trusted).toBe(true);

    const server = await startTestServer({}, db.url);
    try {
      const rp = await relyingParty(server, { clientId: worker.client_id, clientSecret: worker.client_secret });
      expect((await oidc.clientCredentialsGrant(rp)).access_token).toBeTruthy();
      const web = await relyingParty(server, { clientId: webClient.client_id, clientSecret: webClient.client_secret });
      const flow = await signIn(web, { login: 'root' });
      expect(flow.sawConsent).toBe(false);
    } finally {
      await server.stop();
    }
  });

  it('rotates keys: new tokens use the new key, tokens signed before still verify', async () => {
    // Its tokens live a day: the old keys must stay published that long, not ACCESS_TOKEN_TTL.
    const api = await latch(['resources', 'create', '--indicator', 'https://api.example.test', '--name', 'API', '--scope', 'read', '--access-token-ttl', '86400'], { databaseUrl: db.url });
    expect(api.code).toBe(0);
    // The same indicator again: one line saying so, not the database's error.
    const again = await latch(['resources', 'create', '--indicator', 'https://api.example.test', '--name', 'Again'], { databaseUrl: db.url });
    expect(again.code).toBe(1);
    expect(again.stderr.trim()).toBe('latch: An API with the indicator https://api.example.test is registered already.');
    const worker = JSON.parse((await latch(['clients', 'create', '--name', 'Batch', '--grant-type', 'client_credentials', '--json'], { databaseUrl: db.url })).stdout);

    const before = await startTestServer({}, db.url);
    const rpBefore = await relyingParty(before, { clientId: worker.client_id, clientSecret: worker.client_secret });
    const oldToken = (await oidc.clientCredentialsGrant(rpBefore, { resource: 'https://api.example.test', scope: 'read' })).access_token;
    const oldKid = decodeProtectedHeader(oldToken).kid;
    await before.stop();

    const rotated = await latch(['keys', 'rotate'], { databaseUrl: db.url, env: { KEY_REFRESH_INTERVAL: '1' } });
    expect(rotated.code).toBe(0);
    expect(rotated.stdout).toContain('new signing keys');
    const activatesAt = Date.parse(/sign with them from (\S+)/.exec(rotated.stdout)![1]!);
    const retireAt = Date.parse(/published until (\S+)/.exec(rotated.stdout)![1]!);
    expect(retireAt).toBeGreaterThanOrEqual(Date.now() + 86_400_000 - 60_000);
    expect(decodeJwt(oldToken).exp! * 1000).toBeLessThanOrEqual(retireAt);

    const after = await startTestServer({ KEY_REFRESH_INTERVAL: '1' }, db.url);
    try {
      const jwks = (await (await fetch(`${after.issuer}/jwks`)).json()) as { keys: { kid: string }[] };
      expect(jwks.keys).toHaveLength(4);
      const rp = await relyingParty(after, { clientId: worker.client_id, clientSecret: worker.client_secret });
      const issue = async () => (await oidc.clientCredentialsGrant(rp, { resource: 'https://api.example.test', scope: 'read' })).access_token;
      // Published at once, the new keys sign from their activation (once every process publishes them).
      if (Date.now() < activatesAt - 200) expect(decodeProtectedHeader(await issue()).kid).toBe(oldKid);
      let newToken = await issue();
      for (let i = 0; i < 50 && decodeProtectedHeader(newToken).kid === oldKid; i += 1) {
        await new Promise((r) => setTimeout(r, 100));
        newToken = await issue();
      }
      expect(decodeProtectedHeader(newToken).kid).not.toBe(oldKid);
      const keySet = createRemoteJWKSet(new URL(`${after.issuer}/jwks`));
      await jwtVerify(oldToken, keySet, { audience: 'https://api.example.test' });
      await jwtVerify(newToken, keySet, { audience: 'https://api.example.test' });
    } finally {
      await after.stop();
    }
  });

  it('records what it changed in the audit log, with the host user who ran it as the actor', async () => {
    const server = await startTestServer({}, db.url);
    try {
      // root, the admin created above, reads the log through the API.
      const login = await fetch(`${server.url}/api/auth/login`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ username: 'root', password: PASSWORD }),
      });
      const { access_token: token } = (await login.json()) as { access_token: string };
      const audit = async (event: string) => {
        const res = await fetch(`${server.url}/api/audit?event=${event}`, { headers: { authorization: `Bearer ${token}` } });
        return ((await res.json()) as { items: { userId: string | null; actorId: string | null; ip: string | null; detail: Record<string, unknown> | null }[] }).items;
      };
      const actor = expect.stringMatching(/^cli(:.+)?$/);

      const created = await audit('admin.user_created');
      expect(created).toHaveLength(2); // weak@ and root@; the refused attempts wrote nothing
      expect(created.every((e) => e.userId && e.actorId !== e.userId)).toBe(true);
      expect(created[0]).toMatchObject({ actorId: actor, ip: null });

      // Every client but the first-party ones the server made at its first start.
      const listed = JSON.parse((await latch(['clients', 'list', '--json'], { databaseUrl: db.url })).stdout) as { clientId: string }[];
      const fromCli = listed.map((c) => c.clientId).filter((id) => !id.startsWith('latch-'));
      const apps = await audit('admin.app_created');
      expect(fromCli).toHaveLength(3);
      expect(apps.map((e) => e.detail!.clientId).sort()).toEqual(fromCli.sort());
      expect(apps[0]).toMatchObject({ actorId: actor });

      expect(await audit('admin.api_resource_created')).toEqual([expect.objectContaining({ actorId: actor, detail: { indicator: 'https://api.example.test' } })]);
      const [rotation] = await audit('admin.signing_keys_rotated');
      expect(rotation).toMatchObject({ actorId: actor, detail: { kids: expect.any(Array), oldKeysRetireAt: expect.any(String) } });
      expect(rotation!.detail!.kids).toHaveLength(2);
    } finally {
      await server.stop();
    }
  });

  it('keeps --json output parseable when it writes to the audit log', async () => {
    const res = await latch(['clients', 'create', '--name', 'Script', '--grant-type', 'client_credentials', '--json'], { databaseUrl: db.url, env: { LOG_LEVEL: 'info' } });
    expect(res.code).toBe(0);
    expect(JSON.parse(res.stdout)).toMatchObject({ client_id: expect.any(String), client_secret: expect.any(String) });
  });
});

describe('first start', () => {
  it('creates the admin named by ADMIN_EMAIL and ADMIN_PASSWORD once', async () => {
    const fresh = await createTestDatabase();
    const env = { ADMIN_EMAIL: 'boss@example.com', ADMIN_PASSWORD: PASSWORD };
    try {
      for (let i = 0; i < 2; i += 1) {
        const server = await startTestServer(env, fresh.url);
        const admins = await server.prisma.user.findMany({ where: { isAdmin: true } });
        await server.stop();
        expect(admins.map((a) => a.email)).toEqual(['boss@example.com']);
      }
    } finally {
      await fresh.drop();
    }
  });

  it('refuses to start with an ADMIN_PASSWORD the registration policy refuses, creating no admin', async () => {
    const fresh = await createTestDatabase();
    try {
      // As the server's own process: the message alone (no stack), and a failed exit.
      const failed = await runNode(['--import', 'tsx', 'src/main.ts'], {
        env: { ...process.env, NODE_OPTIONS: '', DATABASE_URL: fresh.url, PORT: '0', PUBLIC_URL: 'http://127.0.0.1:1', HOST: '127.0.0.1', LOG_LEVEL: 'silent', ADMIN_EMAIL: 'boss@example.com', ADMIN_PASSWORD: 'password' },
        timeoutMs: 30_000,
      });
      expect(failed.code).toBe(1);
      expect(failed.stderr.trim()).toMatch(/^Invalid environment:\n {2}ADMIN_PASSWORD: This password is too easy to guess[^\n]*$/);
      const server = await startTestServer({}, fresh.url);
      try {
        expect(await server.prisma.user.count()).toBe(0);
      } finally {
        await server.stop();
      }
    } finally {
      await fresh.drop();
    }
  });

  it('two processes starting together on one database apply migrations and create keys once', async () => {
    const fresh = await createTestDatabase();
    const { spawn } = await import('node:child_process');
    const children: import('node:child_process').ChildProcess[] = [];
    const start = (port: number) =>
      new Promise<void>((resolve, reject) => {
        const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
          env: { ...process.env, DATABASE_URL: fresh.url, PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'silent' },
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        children.push(child);
        let err = '';
        child.stderr!.on('data', (d) => (err += d));
        child.stdout!.on('data', (d) => String(d).includes('Latch is running') && resolve());
        child.on('exit', (code) => reject(new Error(`exited ${code}: ${err}`)));
      });
    // Ports the OS just handed out, not a random pick that may be another connection's.
    const ports = [await freePort()];
    while (ports.length < 2) {
      const port = await freePort();
      if (!ports.includes(port)) ports.push(port);
    }
    try {
      await Promise.all(ports.map(start));
      const [a, b] = await Promise.all(ports.map((port) => fetch(`http://127.0.0.1:${port}/o/jwks`).then((r) => r.json())));
      expect(a).toEqual(b);
      expect((a as { keys: unknown[] }).keys).toHaveLength(2);
      const status = await latch(['migrate', '--status'], { databaseUrl: fresh.url });
      expect(status.stdout.trim()).toBe('up to date');
    } finally {
      for (const child of children) child.kill('SIGTERM');
      await new Promise((r) => setTimeout(r, 300));
      await fresh.drop();
    }
  });
});
