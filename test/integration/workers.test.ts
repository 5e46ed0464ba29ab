import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { rawGet } from '../support/raw-http.js';
import * as oidc from 'openid-client';
import { createTestDatabase } from '../support/database.js';
import { latch } from '../support/cli.js';
import { PASSWORD, REDIRECT_URI, signIn } from '../support/oidc.js';

// WORKERS=2: two processes share one port; every request may land on either. A full sign-in and
// refresh work regardless, because all state is in the database. Started through `npm start`'s
// entry, which turns AsyncContextFrame on (see src/context-frame.ts).
const METRICS_TOKEN = 'metrics-token-for-the-workers-test';
let db: Awaited<ReturnType<typeof createTestDatabase>>;
let primary: ChildProcess;
let issuer: string;
const logLines: Record<string, unknown>[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as { port: number };
  await new Promise((resolve) => probe.close(resolve));
  issuer = `http://127.0.0.1:${port}/o`;
  primary = spawn(process.execPath, ['--import', 'tsx', 'src/start.ts'], {
    env: { ...process.env, NODE_OPTIONS: '', WORKERS: '2', DATABASE_URL: db.url, PORT: String(port), HOST: '127.0.0.1', PUBLIC_URL: `http://127.0.0.1:${port}`, LOG_LEVEL: 'info', ARGON2_MEMORY_KIB: '1024', ARGON2_TIME_COST: '1', METRICS_TOKEN: METRICS_TOKEN },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  await new Promise<void>((resolve, reject) => {
    let err = '';
    let out = '';
    let bannerSeen = false;
    primary.stderr!.on('data', (d) => (err += d));
    primary.stdout!.on('data', (d) => {
      out += d;
      const lines = out.split('\n');
      out = lines.pop()!;
      for (const line of lines.filter((l) => l.startsWith('{'))) logLines.push(JSON.parse(line) as Record<string, unknown>);
      if (lines.some((l) => l.includes('with 2 worker processes'))) bannerSeen = true;
      // Each process writes its own lines (the workers' logger buffers), so the primary's banner
      // may arrive before a worker's log line.
      if (bannerSeen && logLines.filter((l) => l.msg === 'Latch is listening').length === 2) resolve();
    });
    primary.on('exit', (code) => reject(new Error(`exited ${code}: ${err}`)));
  });
});
afterAll(async () => {
  primary?.kill('SIGTERM');
  await new Promise((r) => setTimeout(r, 500));
  await db?.drop();
});

describe('WORKERS', () => {
  it('runs that many processes on one port, and a sign-in works across them', async () => {
    // Worker processes run src/start.ts; tsx may also run an esbuild service as a child.
    const children = execFileSync('pgrep', ['-P', String(primary.pid), '-f', 'src/start.ts'], { encoding: 'utf8' }).trim().split('\n');
    expect(children).toHaveLength(2);
    // The entry started again in place with AsyncContextFrame (same pid), and the workers inherited it.
    const listening = logLines.filter((l) => l.msg === 'Latch is listening');
    expect(listening.map((l) => l.pid).sort()).toEqual(children.map(Number).sort());
    expect(listening.every((l) => l.asyncContextFrame === true)).toBe(true);

    await latch(['users', 'create', '--email', 'w@example.com', '--password-stdin'], { databaseUrl: db.url, stdin: PASSWORD });
    const created = JSON.parse((await latch(['clients', 'create', '--name', 'W', '--redirect-uri', REDIRECT_URI, '--json'], { databaseUrl: db.url })).stdout);
    const rp = await oidc.discovery(new URL(issuer), created.client_id, undefined, oidc.ClientSecretBasic(created.client_secret), { execute: [oidc.allowInsecureRequests] });
    for (let i = 0; i < 3; i += 1) {
      const tokens = await (await signIn(rp, { login: 'w@example.com' })).tokens();
      const refreshed = await oidc.refreshTokenGrant(rp, tokens.refresh_token!);
      expect((await oidc.fetchUserInfo(rp, refreshed.access_token, tokens.claims()!.sub)).email).toBe('w@example.com');
    }
  });

  it('answers /metrics with the sum over every worker, whichever one is asked', async () => {
    // A new connection each time, so that the cluster hands requests to both workers in turn.
    const get = async (path: string, headers: Record<string, string> = {}) => (await rawGet(issuer, path, headers)).body;
    for (let i = 0; i < 10; i += 1) await get('/healthz');
    for (let i = 0; i < 4; i += 1) {
      const text = await get('/metrics', { authorization: `Bearer ${METRICS_TOKEN}` });
      expect(text).toMatch(/^latch_http_requests_total\{method="GET",route="\/healthz",status="200"\} 10$/m);
      expect(text).toMatch(/^latch_process_cpu_seconds_total \d/m);
    }
  });

  it('replaces a worker that dies while serving', async () => {
    const listening = () => logLines.filter((l) => l.msg === 'Latch is listening').map((l) => l.pid as number);
    const [victim] = listening();
    process.kill(victim!, 'SIGKILL');
    // While its replacement starts, /metrics answers from the worker still serving. (A connection
    // the primary handed to the worker as it died may get no answer: try again.)
    let during: number | undefined;
    for (let i = 0; i < 5 && during !== 200; i += 1) {
      during = await rawGet(issuer, '/metrics', { authorization: `Bearer ${METRICS_TOKEN}` }, 2_000).then((r) => r.status, () => undefined);
    }
    expect(during).toBe(200);
    const deadline = Date.now() + 30_000;
    while (listening().length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(listening()).toHaveLength(3);
    // The primary says which worker died and how, as a JSON line like every other.
    expect(logLines.find((l) => l.msg === 'a worker exited; starting another')).toMatchObject({ pid: victim, signal: 'SIGKILL', level: 50 });
    expect((await fetch(`${issuer}/.well-known/openid-configuration`)).status).toBe(200);
  });
});

describe('a start without its database', () => {
  it.each([
    ['a server that refuses connections', 'postgres://latch:secret@127.0.0.1:1/latch', /connect ECONNREFUSED/],
    ['a file that cannot be made', 'file:/etc/passwd/latch.db', /EEXIST/],
  ])('stops with one line naming %s and why, without its password or a stack', async (_what, url, reason) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/start.ts'], {
      env: { ...process.env, NODE_OPTIONS: '', DATABASE_URL: url, PORT: '0', PUBLIC_URL: 'http://127.0.0.1:1', HOST: '127.0.0.1', LOG_LEVEL: 'silent' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let err = '';
    child.stderr!.on('data', (d) => (err += d));
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    expect(code).toBe(1);
    expect(err.trim().split('\n')).toHaveLength(1);
    expect(err).toMatch(/^Cannot use the database at /);
    expect(err).toMatch(reason);
    expect(err).not.toContain('secret');
  }, 30_000);
});

describe('WORKERS, when the server cannot start', () => {
  it('stops with a failure, as one process would, instead of starting workers forever', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/start.ts'], {
      // A database file that cannot be made (its folder is a file): every worker fails while starting.
      env: { ...process.env, NODE_OPTIONS: '', WORKERS: '2', DATABASE_URL: 'file:/etc/passwd/latch.db', PORT: '0', PUBLIC_URL: 'http://127.0.0.1:1', HOST: '127.0.0.1', LOG_LEVEL: 'silent' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let err = '';
    child.stderr!.on('data', (d) => (err += d));
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    const code = await Promise.race([exited, new Promise<'running'>((r) => setTimeout(() => r('running'), 45_000))]);
    if (code === 'running') child.kill('SIGKILL');
    expect(code).not.toBe('running');
    expect(code).not.toBe(0);
    expect(err).toMatch(/exited \(\d+\) while starting; stopping/);
    expect(err.match(/exited/g)!.length).toBeLessThanOrEqual(2);
  }, 60_000);
});
