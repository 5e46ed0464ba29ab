import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/env.js';
import { createLogger } from '../../src/deps.js';
import { startServer, type RunningServer } from '../../src/server.js';
import { createTestDatabase } from './database.js';
import { startSmtpSink } from './smtp-sink.js';

export type TestServer = RunningServer & { issuer: string; stop(): Promise<void> };

export async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as { port: number };
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

/**
 * A real Latch server on a free loopback port with a fresh database. Cheap argon2 unless asked.
 * Mail without SMTP_URL goes to an outbox folder of its own, removed with the server, not to the
 * checkout's ./data/outbox.
 */
export async function startTestServer(env: Record<string, string> = {}, databaseUrl?: string): Promise<TestServer> {
  const db = databaseUrl ? undefined : await createTestDatabase();
  const port = await freePort();
  const outbox = env.OUTBOX_DIR ? undefined : mkdtempSync(join(tmpdir(), 'latch-outbox-'));
  const config = loadConfig({
    NODE_ENV: 'test',
    HOST: '127.0.0.1',
    PORT: String(port),
    PUBLIC_URL: `http://127.0.0.1:${port}`,
    DATABASE_URL: databaseUrl ?? db!.url,
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    ARGON2_MEMORY_KIB: '1024',
    ARGON2_TIME_COST: '1',
    ...(outbox ? { OUTBOX_DIR: outbox } : {}),
    ...env,
  });
  const running = await startServer(config, createLogger(config));
  return {
    ...running,
    issuer: config.oidc.issuer,
    async stop() {
      await running.close();
      await db?.drop();
      if (outbox) rmSync(outbox, { recursive: true, force: true });
    },
  };
}

/** A test server that sends its mail (SMTP_URL) to an SMTP sink in this process; stop() ends both. */
export async function startServerWithMail(env: Record<string, string> = {}) {
  const smtp = await startSmtpSink();
  let server: TestServer;
  try {
    server = await startTestServer({ ...env, SMTP_URL: smtp.url });
  } catch (error) {
    await smtp.close();
    throw error;
  }
  return {
    server,
    smtp,
    async stop() {
      await server.stop();
      await smtp.close();
    },
  };
}
