import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort } from '../support/server.js';

// Importing modules is most of a start (see the README's Performance): a server on SQLite must
// not load what only PostgreSQL needs. Run in a process of its own, since this one has loaded
// everything; CommonJS packages, pg among them, are listed in require's cache however imported.
const START_AND_LIST = `
  const { createRequire } = await import('node:module');
  const { loadConfig } = await import('./src/config/env.ts');
  const { startServer } = await import('./src/server.ts');
  const running = await startServer(loadConfig({ ...process.env, HOST: '127.0.0.1', LOG_LEVEL: 'silent' }));
  const answer = await fetch(running.url + '/o/.well-known/openid-configuration');
  const loaded = Object.keys(createRequire(import.meta.url).cache);
  await running.close();
  console.log(JSON.stringify({ status: answer.status, loaded }));
`;

describe('a server on SQLite', () => {
  const dir = mkdtempSync(join(tmpdir(), 'latch-start-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('starts and serves without loading PostgreSQL’s driver or Prisma’s PostgreSQL adapter', async () => {
    const port = await freePort();
    const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', START_AND_LIST], {
      encoding: 'utf8',
      env: { ...process.env, NODE_ENV: 'test', PORT: String(port), PUBLIC_URL: `http://127.0.0.1:${port}`, DATABASE_URL: `file:${join(dir, 'latch.db')}` },
    });
    const { status, loaded } = JSON.parse(out.trim().split('\n').at(-1)!) as { status: number; loaded: string[] };
    expect(status).toBe(200);
    // The check itself works: SQLite's driver, loaded the same way, is listed.
    expect(loaded.some((path) => path.includes('/node_modules/better-sqlite3/'))).toBe(true);
    expect(loaded.filter((path) => /\/node_modules\/(pg|pg-pool|pg-protocol|@prisma\/adapter-pg)\//.test(path))).toEqual([]);
  });
});
