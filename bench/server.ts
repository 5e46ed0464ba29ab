// One benchmark target in its own process (so its CPU time and memory are its own). Started by
// bench/run.ts; reports readiness, storage-operation counts and its hashes' CPU time over IPC.
import { createServer } from 'node:net';
import { statSync, existsSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { subscribe } from 'node:diagnostics_channel';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { PerformanceObserver, monitorEventLoopDelay } from 'node:perf_hooks';
import pg from 'pg';
import { loadConfig } from '../src/config/env.js';
import { createLogger } from '../src/deps.js';
import { startServer } from '../src/server.js';
import { passwordHashCpuSeconds } from '../src/passwords/passwords.js';
import type { Db } from '../src/db/prisma.js';
import type { OidcStore, StoreWrite } from '../src/db/oidc-store.js';
import { startBaseline } from './baseline.js';
import { benchDatabase } from './database.js';
import { REDIRECT_URI, RESOURCE, USER, type Ready } from './fixtures.js';
import { percentile } from './percentile.js';

const target = process.argv[2] as 'sqlite' | 'postgres' | 'baseline';
const counter = { storage: 0 };
// `--profile`: the CPU profile of a measured run only, without start-up and warm-up.
const profiler = new Session();
profiler.connect();
// BENCH_TRACE_OPS=1 prints each storage operation's name, to see where a sign-in's operations go.
const trace = process.env.BENCH_TRACE_OPS === '1' ? (name: string) => console.error(`op ${counter.storage} ${name}`) : () => {};
// Garbage-collection pauses since the last `pauses` question: every pause stops the event loop, so the
// longest of them is where a request's latency tail starts.
const gc = { totalMs: 0, maxMs: 0 };
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    gc.totalMs += entry.duration;
    gc.maxMs = Math.max(gc.maxMs, entry.duration);
  }
}).observe({ entryTypes: ['gc'] });
// How late the event loop ran its timers since the last `pauses` question: every stall of the server's
// own (a long task, a pause, the core taken by another thread) shows here, whatever caused it.
// The histogram counts the timer's own interval in, so that is taken off.
const LOOP_RESOLUTION_MS = 10;
const loopDelay = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS });
loopDelay.enable();
// Each response's time inside the server, from its request's headers parsed to its last byte
// handed to the socket, per path. The load generator's latency adds the wait before the server
// reads the request (an event loop busy elsewhere) and the load generator's own delays (its core,
// shared with PostgreSQL in these runs): a client-side tail with a short server-side one is not
// the server's. Reported for the path that answered the most since the last question (in a run
// during sign-ins, the paced endpoint's, not the sign-ins'). Kept from the first such question
// on, so that a soak, which asks none, holds no times.
const inServer = new Map<string, number[]>();
let timing = false;
const requestStarted = new WeakMap<ServerResponse, number>();
subscribe('http.server.request.start', (msg) => timing && requestStarted.set((msg as { response: ServerResponse }).response, performance.now()));
subscribe('http.server.response.finish', (msg) => {
  const { request, response } = msg as { request: IncomingMessage; response: ServerResponse };
  const started = requestStarted.get(response);
  if (started === undefined) return;
  const path = request.url?.split('?')[0] ?? '';
  let times = inServer.get(path);
  if (!times) inServer.set(path, (times = []));
  times.push(performance.now() - started);
});
function inServerP99Ms() {
  timing = true;
  const busiest = [...inServer.values()].sort((a, b) => b.length - a.length)[0] ?? [];
  inServer.clear();
  return percentile(busiest, 0.99);
}

// For soak runs: how big the database is and how many provider rows it holds.
/** The database's size on disk (SQLite: the file and its write-ahead log; `logBytes` the log alone) and its provider rows. */
let measureDb: () => Promise<{ bytes: number; logBytes?: number; providerRows: number }> = async () => ({ bytes: 0, providerRows: 0 });

async function freePort() {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as { port: number };
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

// What the target made for itself (a temporary folder or database), removed when it is stopped.
let removeDatabase = async () => {};

async function databaseUrl() {
  const db = await benchDatabase(target === 'postgres' ? 'postgres' : 'sqlite', `latch_bench_${process.pid}`);
  removeDatabase = db.remove;
  return db.url;
}

/** Counts every Prisma operation (model calls and raw queries) as one storage operation. */
const countQueries = (db: Db) =>
  db.$extends({
    query: {
      $allOperations({ model, operation, args, query }: { model?: string; operation: string; args: unknown; query: (a: unknown) => Promise<unknown> }) {
        counter.storage += 1;
        trace(`${model ?? ''}.${operation}`);
        return query(args);
      },
    },
  }) as unknown as Db;

/** Counts every call to the provider's store as one storage operation. */
const countStoreCalls = (store: OidcStore): OidcStore =>
  Object.fromEntries(
    Object.entries(store).map(([name, fn]) => [
      name,
      (...args: unknown[]) => {
        if (name !== 'close') {
          counter.storage += 1;
          const what = name === 'writeBatch' ? (args[0] as StoreWrite[]).map((w) => `${w.kind} ${w.model}`).join(', ') : String(args[0]);
          trace(`store.${name}(${what})`);
        }
        return (fn as (...a: unknown[]) => unknown)(...args);
      },
    ]),
  ) as unknown as OidcStore;

/**
 * This machine's PostgreSQL may run with autovacuum off; production servers have it on (the
 * default). Without it the provider table is never analysed, and the planner, knowing nothing of
 * it, reads a token's session by intersecting the uid index with every Session row's primary key
 * (0.7 ms a lookup with 1,300 sessions, against 0.05 ms once analysed), and the space of deleted
 * and updated rows is never reused. So do what autovacuum would, with its default thresholds,
 * checked every 10 seconds: vacuum once dead rows pass 50 + 20 % of the table, analyse once
 * changes since the last analysis pass 50 + 10 %, rather than vacuuming the whole table every 10
 * seconds regardless, which no production server does and which competes with the run for the
 * shared cores.
 */
async function standInForAutovacuum(url: string) {
  // Its own connection, so that the storage operations counted for Latch stay Latch's.
  const db = new pg.Client({ connectionString: url });
  // Its connection ends when the bench drops the database: then it stops checking.
  let ended = false;
  db.on('error', () => (ended = true));
  db.on('end', () => (ended = true));
  await db.connect();
  const { rows } = await db.query<{ autovacuum: string }>('SHOW autovacuum');
  if (rows[0]?.autovacuum !== 'off') return void (await db.end());
  type Stats = { table: string; toast: boolean; live: string; dead: string; changed: string };
  // Every table, as autovacuum covers them all: besides the provider table, each sign-in rewrites
  // the user's row (last sign-in), and a failed one the throttle's counters. And, as autovacuum
  // does, each TOAST table (where large values are kept apart) on its own counts, and the catalog
  // of planner statistics: each ANALYZE replaces the table's rows there, and their large values
  // grew its TOAST, and the database, by 0.17 MB a minute through a soak until vacuumed.
  const run = async () => {
    const { rows: tables } = await db.query<Stats>(
      `SELECT format('%I.%I', schemaname, relname) AS table, schemaname = 'pg_toast' AS toast,
         n_live_tup AS live, n_dead_tup AS dead, n_mod_since_analyze AS changed
       FROM pg_stat_all_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema') OR relid = 'pg_statistic'::regclass`,
    );
    for (const stats of tables) {
      const live = Number(stats.live);
      if (Number(stats.dead) > 50 + 0.2 * live) await db.query(`VACUUM ${stats.toast ? '' : 'ANALYZE '}${stats.table}`);
      else if (!stats.toast && Number(stats.changed) > 50 + 0.1 * live) await db.query(`ANALYZE ${stats.table}`);
    }
  };
  // The bench dropping the database at the end ends this connection too (57P01), during a check
  // or between two (then the client refuses the next query): not a failure.
  const check = () => ended || run().catch((err: { code?: string }) => err.code === '57P01' || ended || console.error('vacuum failed', err));
  await db.query('ANALYZE');
  setInterval(check, 10_000).unref();
}

/**
 * The PostgreSQL backends serving `url`'s database, for the bench to move to the load generator's
 * core (1), as if the database ran on a host of its own, as it does in production. Left to the
 * scheduler, they took turns with Latch on its core: client credentials at 70 % of the peak had
 * p99 170-225 ms, against 41-69 ms with them moved. Asked before every measured run, since pools
 * open connections as they need them.
 */
async function databaseBackends(url: string): Promise<number[]> {
  const db = new pg.Client({ connectionString: url });
  await db.connect();
  try {
    return (await db.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()')).rows.map((row) => row.pid);
  } finally {
    await db.end();
  }
}
let listBackends = async (): Promise<number[]> => [];

async function main(): Promise<Ready> {
  const port = await freePort();
  if (target === 'baseline') {
    const { issuer, client } = await startBaseline(port, counter);
    return { url: `http://127.0.0.1:${port}`, issuer, pid: process.pid, client };
  }
  const config = loadConfig({
    ...process.env,
    NODE_ENV: 'production',
    HOST: '127.0.0.1',
    PORT: String(port),
    PUBLIC_URL: `http://127.0.0.1:${port}`,
    DATABASE_URL: await databaseUrl(),
    LOG_LEVEL: 'silent',
    // The load comes from one IP and signs one account in thousands of times, from up to a dozen
    // connections at once; the throttle counts each attempt while its password is checked.
    LOGIN_MAX_FAILURES_PER_IP: '1000000',
    LOGIN_MAX_FAILURES_PER_ACCOUNT: '1000000',
  });
  const running = await startServer(config, createLogger(config), { instrumentDb: countQueries, instrumentStore: countStoreCalls });
  process.once('SIGTERM', () => {
    const stopped = running.close().catch(() => {});
    void stopped.then(removeDatabase).finally(() => process.exit(0));
  });
  measureDb = async () => {
    const providerRows = await running.prisma.oidcPayload.count();
    if (target === 'postgres') {
      const [row] = await running.prisma.$queryRawUnsafe<{ size: bigint }[]>('SELECT pg_database_size(current_database()) AS size');
      return { bytes: Number(row!.size), providerRows };
    }
    const file = config.db.url.replace(/^file:/, '');
    const size = (f: string) => (existsSync(f) ? statSync(f).size : 0);
    const logBytes = size(`${file}-wal`);
    return { bytes: size(file) + logBytes, logBytes, providerRows };
  };
  if (target === 'postgres') {
    await standInForAutovacuum(config.db.url);
    listBackends = () => databaseBackends(config.db.url);
  }
  await running.users.create({ ...USER, emailVerified: true });
  await running.resources.create({ indicator: RESOURCE.indicator, name: 'Bench API', scopes: RESOURCE.scopes });
  const created = await running.clients.create({
    name: 'Bench',
    redirectUris: [REDIRECT_URI],
    grantTypes: ['authorization_code', 'refresh_token', 'client_credentials'],
  });
  return { url: running.url, issuer: config.oidc.issuer, pid: process.pid, client: { id: created.clientId, secret: created.clientSecret! } };
}

main().then(
  (ready) => {
    process.send?.({ type: 'ready', ready });
    process.on('message', (msg: { type: string }) => {
      if (msg.type === 'counters') process.send?.({ type: 'counters', storage: counter.storage, hashCpuSeconds: passwordHashCpuSeconds() });
      if (msg.type === 'profile-start') void profiler.post('Profiler.enable').then(() => profiler.post('Profiler.start')).then(() => process.send?.({ type: 'profile-start' }));
      if (msg.type === 'profile-stop') void profiler.post('Profiler.stop').then(({ profile }) => process.send?.({ type: 'profile-stop', profile }));
      if (msg.type === 'backends') void listBackends().then((pids) => process.send?.({ type: 'backends', pids }));
      if (msg.type === 'pauses') {
        const late = (ns: number) => Math.max(0, ns / 1e6 - LOOP_RESOLUTION_MS);
        const loop = { loopP99Ms: late(loopDelay.percentile(99)), loopMaxMs: late(loopDelay.max) };
        process.send?.({ type: 'pauses', ...gc, ...loop, serverP99Ms: inServerP99Ms() });
        Object.assign(gc, { totalMs: 0, maxMs: 0 });
        loopDelay.reset();
      }
      if (msg.type === 'dbsize') void measureDb().then((size) => process.send?.({ type: 'dbsize', ...size }));
    });
  },
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
