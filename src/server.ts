import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Config } from './config/env.js';
import { createDeps, createLogger, type DepsOptions } from './deps.js';
import { createApp } from './app.js';
import { purgeExpired } from './oidc/adapter.js';
import { purgeExpiredCounters } from './auth/throttle-counters.js';
import { providerOf } from './db/url.js';
import { schedulePurges } from './db/purge.js';
import { MAIL_RETENTION_DAYS } from './mail/mail-queue.js';
import { loadSigningJwks, signingKeysVersion } from './keys/signing-keys.js';
import { lowerHashPriority } from './passwords/hash-priority.js';

export type RunningServer = { url: string; server: Server; close(): Promise<void> } & Awaited<ReturnType<typeof createDeps>>;

// How long a shutdown waits for requests under way to be answered before cutting them off.
const SHUTDOWN_DRAIN_MS = 10_000;

/**
 * Stops taking connections and lets the requests under way finish: a rolling restart must not cut
 * off a token request whose refresh token it has already rotated. Kept-alive connections are
 * closed as soon as they fall idle; whatever is still running after SHUTDOWN_DRAIN_MS is cut off.
 */
async function drain(server: Server) {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeIdleConnections();
  const idle = setInterval(() => server.closeIdleConnections(), 50);
  const deadline = setTimeout(() => server.closeAllConnections(), SHUTDOWN_DRAIN_MS);
  try {
    await closed;
  } finally {
    clearInterval(idle);
    clearTimeout(deadline);
  }
}

/** Builds and starts Latch; used by main.ts and by tests (with PORT=0). */
export async function startServer(config: Config, logger = createLogger(config), options: DepsOptions = {}): Promise<RunningServer> {
  const deps = await createDeps(config, logger, options);
  const lowered = await lowerHashPriority(config.argon2Nice);
  logger.debug({ nice: config.argon2Nice, lowered }, 'priority of password hashes');
  const { app, reloadKeys } = createApp(deps);
  const server = app.listen(config.http.port, config.http.host);
  await new Promise<void>((resolve, reject) => server.once('listening', resolve).once('error', reject));
  const { port } = server.address() as AddressInfo;

  const purges = schedulePurges(async (signal) => {
    const auditBefore = new Date(Date.now() - config.auditRetentionDays * 24 * 3600_000);
    const steps: [string, () => Promise<unknown>][] = [
      ['provider rows', () => purgeExpired(deps.oidcStore, { signal })],
      ['emailed links', () => deps.tokens.purgeExpired(signal)],
      ['throttle counters', () => purgeExpiredCounters(deps.prisma, providerOf(config.db.url), signal)],
      ['audit events', async () => config.auditRetentionDays > 0 && deps.audit.purgeOlderThan(auditBefore, signal)],
      ['mail envelopes', () => deps.mail.purgeFinishedBefore(new Date(Date.now() - MAIL_RETENTION_DAYS * 24 * 3600_000), signal)],
    ];
    // One after another: each is paced to a fifth of the server's time, and so are they together.
    for (const [what, purge] of steps) {
      try {
        const count = await purge();
        if (count) logger.debug({ count, what }, 'purged expired rows');
      } catch (err) {
        logger.warn({ err, what }, 'purge failed');
      }
    }
  }, config.purgeIntervalSeconds * 1000);
  // Keys rotated by `latch keys rotate` (or by another instance) are published within this
  // interval, and sign once every process publishes them (see activationDelayMs).
  const refresh = config.keyRefreshSeconds;
  let keysVersion = deps.jwksVersion;
  const keyWatch = setInterval(() => {
    signingKeysVersion(deps.prisma, refresh)
      .then(async (version) => {
        if (version === keysVersion) return;
        const loaded = await loadSigningJwks(deps.prisma, refresh);
        reloadKeys(loaded.jwks);
        // The version of what was loaded, once published: a reload that failed is tried again at
        // the next check, and a key that activated since the check is noticed at the next.
        keysVersion = loaded.version;
        logger.info({ keys: version }, 'signing keys changed; now publishing the new set');
      })
      .catch((err) => logger.warn({ err }, 'could not check signing keys'));
  }, config.keyRefreshSeconds * 1000);
  keyWatch.unref();
  // Mail that could not be sent at once is retried with backoff.
  const mailRetry = setInterval(() => {
    deps.mail.retryDue().catch((err) => logger.warn({ err }, 'mail retry pass failed'));
  }, 30_000);
  mailRetry.unref();

  return {
    ...deps,
    server,
    url: `http://127.0.0.1:${port}`,
    async close() {
      // A purge under way ends after its current batch, before the databases close under it.
      await purges.stop();
      clearInterval(mailRetry);
      clearInterval(keyWatch);
      deps.settings.stop();
      await drain(server);
      // Links already promised in an answer are stored (and their mail queued) before the databases close.
      await deps.accounts.settled();
      await deps.prisma.$disconnect();
      await deps.oidcStore.close();
    },
  };
}
