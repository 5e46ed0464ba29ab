// npm run bench:purge -- [--database sqlite|postgres] [--rows 150000] [--rate 3700]
// What a purge of many expired rows costs the requests that run meanwhile. Fills a new database
// through the store with `rows` expired client-credentials tokens (and 50,000 live ones), then
// purges them as the server's housekeeping does while writes arrive at `rate` a second, each timed
// from its call until it is stored, and prints how long the purge took, how late the event loop
// ran, those writes' latency and, on SQLite, how large the write-ahead log grew. Runs pinned to
// one core where the machine has two, as the bench's servers do.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { statSync } from 'node:fs';
import { cpus } from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import Database from 'better-sqlite3';
import { z } from 'zod';
import { migrate } from '../src/db/migrate.js';
import { createOidcStore, type PayloadColumns } from '../src/db/oidc-store.js';
import { purgeExpired } from '../src/oidc/adapter.js';
import { benchDatabase } from './database.js';
import { percentile } from './percentile.js';
import { commandLine } from './command-line.js';

const USAGE = `npm run bench:purge -- [options]
  --database sqlite   sqlite or postgres (BENCH_DATABASE_URL, default the local server)
  --rows 150000       expired rows to purge (50,000 live ones are added)
  --rate 3700         writes a second while the purge runs
  --help              this text`;
const { database: kind, rows, rate } = commandLine(
  USAGE,
  { database: { type: 'string', default: 'sqlite' }, rows: { type: 'string', default: '150000' }, rate: { type: 'string', default: '3700' } },
  z.object({ database: z.enum(['sqlite', 'postgres']), rows: z.coerce.number().int().min(1), rate: z.coerce.number().positive() }),
);
if (cpus().length >= 2) execFileSync('taskset', ['-cp', '0', String(process.pid)], { stdio: 'ignore' });

const db = await benchDatabase(kind, `latch_purge_${process.pid}`);
await migrate(db.url);
const store = await createOidcStore(kind === 'sqlite' ? 'sqlite' : 'postgresql', db.url, { poolSize: 10 });
const payload = JSON.stringify({ iat: 1, exp: 2, clientId: 'bench-client', kind: 'ClientCredentials', jti: 'x'.repeat(43), scope: 'api:read', aud: 'https://api.example', gty: 'client_credentials' });
const columns = (expiresAt: Date): PayloadColumns => ({ grantId: null, uid: null, userCode: null, accountId: null, clientId: 'bench-client', expiresAt, consumedAt: null });
const token = (expiresAt: Date) => store.upsert('ClientCredentials', randomBytes(32).toString('base64url'), payload, columns(expiresAt));
const fill = async (count: number, expiresAt: () => Date) => {
  for (let i = 0; i < count; i += 2000) await Promise.all(Array.from({ length: Math.min(2000, count - i) }, () => token(expiresAt())));
};
// Expired three minutes ago: past the purge's minute of clock tolerance.
await fill(rows, () => new Date(Date.now() - 180_000));
await fill(50_000, () => new Date(Date.now() + 3600_000));

// The log starts empty, so its size below is what the purge and the writes made it.
const logFile = db.url.replace(/^file:/, '') + '-wal';
if (kind === 'sqlite') {
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const own = new Database(db.url.replace(/^file:/, ''));
  own.pragma('wal_checkpoint(TRUNCATE)');
  own.close();
}
const logSize = () => (kind === 'sqlite' ? statSync(logFile, { throwIfNoEntry: false })?.size ?? 0 : 0);
let logMax = 0;
const watchLog = setInterval(() => (logMax = Math.max(logMax, logSize())), 10);

// Writes at `rate` a second, in a burst every 3 ms as requests' writes arrive.
const latencies: number[] = [];
let writing = true;
const perTick = Math.max(1, Math.round((rate * 3) / 1000));
const writes = (async () => {
  while (writing) {
    for (let i = 0; i < perTick; i += 1) {
      const t0 = performance.now();
      void token(new Date(Date.now() + 3600_000)).then(() => latencies.push(performance.now() - t0));
    }
    await new Promise((resolve) => setTimeout(resolve, 3));
  }
})();
await new Promise((resolve) => setTimeout(resolve, 1000));
latencies.length = 0;

const loop = monitorEventLoopDelay({ resolution: 1 });
loop.enable();
const started = performance.now();
const purged = await purgeExpired(store);
const seconds = (performance.now() - started) / 1000;
loop.disable();
writing = false;
await writes;
clearInterval(watchLog);
await store.close();
await db.remove();

const late = (ns: number) => Math.max(0, ns / 1e6 - 1).toFixed(1);
const ms = (q: number) => percentile(latencies, q).toFixed(1);
console.log('| database | rows purged | seconds | rows/s | event loop late p99 / max ms | writes meanwhile | their p50 / p99 / max ms | log MB |');
console.log('|---|---:|---:|---:|---:|---:|---:|---:|');
console.log(
  `| ${kind} | ${purged} | ${seconds.toFixed(1)} | ${(purged / seconds).toFixed(0)} | ${late(loop.percentile(99))} / ${late(loop.max)} | ${latencies.length} | ${ms(0.5)} / ${ms(0.99)} / ${Math.max(...latencies).toFixed(1)} | ${kind === 'sqlite' ? (logMax / 1e6).toFixed(1) : ''} |`,
);
process.exit(0);
