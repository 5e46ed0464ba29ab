import 'dotenv/config';
import cluster, { type Worker } from 'node:cluster';
import { ConfigError, loadConfig, type Config } from './config/env.js';
import { startServer } from './server.js';
import { createLogger } from './deps.js';
import { contextFrameInUse, currentRuntime } from './context-frame.js';
import { gatherWorkerMetrics } from './metrics/cluster-metrics.js';
import { withoutSecrets } from './db/url.js';
import { databaseUnavailable } from './db/errors.js';

const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
if (major < 22 || (major === 22 && minor < 12)) {
  console.error(`Latch needs Node.js 22.12 or newer; this is ${process.version}.`);
  process.exit(1);
}

let config: Config;
try {
  config = loadConfig();
} catch (err) {
  console.error((err as Error).message);
  process.exit(1);
}

function banner(users: number | undefined) {
  const { issuer } = config.oidc;
  console.log(`
  Latch is running${config.http.workers > 1 ? ` with ${config.http.workers} worker processes` : ''}.
    Issuer (OpenID Connect discovery): ${issuer}/.well-known/openid-configuration
    Database: ${withoutSecrets(config.db.url)}
  Next steps:
    ${users === 0 ? 'Create an admin:      npx latch users create --email you@example.com --admin\n    ' : ''}Register a client:    npx latch clients create --name "My app" --redirect-uri http://localhost:8080/callback
    List clients:         npx latch clients list
`);
}

if (config.http.workers > 1 && cluster.isPrimary) {
  // WORKERS=N: N processes share one port (node:cluster). Each migrates and bootstraps under the
  // database lock, so only the first does the work. A worker that dies once serving is replaced,
  // after a pause that doubles while replacements keep dying before they are ready.
  let stopping = false;
  let ready = 0;
  let serving = false;
  let failedInARow = 0;
  const servingWorkers = new Set<number>();
  const fork = () =>
    cluster.fork().on('message', function (this: Worker, msg: { type?: string; users?: number }) {
      if (msg.type !== 'ready') return;
      servingWorkers.add(this.id);
      failedInARow = 0;
      if ((ready += 1) === config.http.workers) {
        serving = true;
        banner(msg.users);
      }
    });
  const stopAll = () => {
    stopping = true;
    for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGTERM');
  };
  gatherWorkerMetrics((worker) => servingWorkers.has(worker.id));
  for (let i = 0; i < config.http.workers; i += 1) fork();
  const logger = createLogger(config);
  cluster.on('exit', (worker, code, signal) => {
    servingWorkers.delete(worker.id);
    if (stopping) return;
    if (!serving) {
      // A worker failed while the server was starting (the database unreachable, a migration
      // failing): every other would fail the same way. Stop, as one process would.
      console.error(`worker ${worker.process.pid} exited (${code ?? signal}) while starting; stopping`);
      process.exitCode = code || 1;
      return stopAll();
    }
    const delayMs = Math.min(30_000, 100 * 2 ** failedInARow);
    failedInARow += 1;
    logger.error({ pid: worker.process.pid, code, signal, restartInMs: delayMs }, 'a worker exited; starting another');
    setTimeout(() => stopping || fork(), delayMs);
  });
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, stopAll);
} else {
  const running = await startServer(config).catch((err: unknown) => {
    // A refused setting found only while starting (a weak ADMIN_PASSWORD): its message, no stack.
    if (err instanceof ConfigError) console.error(err.message);
    // A database that cannot be reached or opened: which one, and why, on one line.
    else if (databaseUnavailable(err) || ['3D000', '28P01', '28000'].includes((err as { code?: string }).code ?? '') || ['mkdir', 'open'].includes((err as { syscall?: string }).syscall ?? ''))
      console.error(`Cannot use the database at ${withoutSecrets(config.db.url)}: ${(err as Error).message || (err as { code?: string }).code}`);
    else throw err;
    process.exit(1);
  });
  running.logger.info({ issuer: config.oidc.issuer, pid: process.pid, asyncContextFrame: contextFrameInUse(currentRuntime()) }, 'Latch is listening');
  const users = await running.users.count();
  if (cluster.isWorker) process.send?.({ type: 'ready', users });
  else banner(users);

  let stopping = false;
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      if (stopping) return;
      stopping = true;
      running.logger.info({ signal }, 'shutting down');
      running.close().then(
        () => process.exit(0),
        () => process.exit(1),
      );
    });
  }
}
