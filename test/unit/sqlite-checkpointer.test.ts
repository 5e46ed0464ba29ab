import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import Database from 'better-sqlite3';
import { migrate } from '../../src/db/migrate.js';
import { createOidcStore } from '../../src/db/oidc-store.js';
import { createCheckpointer, type Checkpointer } from '../../src/db/sqlite-checkpointer.js';

// Checkpointing is SQLite's own business: these run on a SQLite file whatever database the suite uses.
const dirs: string[] = [];
const checkpointers: Checkpointer[] = [];
afterEach(async () => {
  await Promise.all(checkpointers.splice(0).map((c) => c.stop()));
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A WAL database whose own connection never checkpoints, so only the thread can. */
function walDatabase() {
  const dir = mkdtempSync(join(tmpdir(), 'latch-ckpt-'));
  dirs.push(dir);
  const file = join(dir, 'db.sqlite');
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma('wal_autocheckpoint = 0');
  db.exec('CREATE TABLE t (id TEXT PRIMARY KEY, payload TEXT)');
  const insert = db.prepare('INSERT INTO t VALUES (?, ?)');
  const write = (rows: number) => db.transaction(() => {
    for (let i = 0; i < rows; i += 1) insert.run(randomBytes(16).toString('hex'), 'x'.repeat(500));
  })();
  return { file, db, write, size: () => statSync(file).size };
}

const until = async (check: () => boolean, ms = 5_000) => {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
};

describe('the SQLite checkpoint thread', () => {
  it('copies committed pages from the log into the database file, off the event loop', async () => {
    const { file, db, write, size } = walDatabase();
    const checkpointer = createCheckpointer(file, { intervalMs: 20 });
    checkpointers.push(checkpointer);
    const before = size();
    write(2_000);
    expect(size()).toBe(before); // committed to the log only
    checkpointer.wake();
    // The file grows before the thread's report (a message after the checkpoint) arrives.
    await until(() => size() > before + 500_000 && checkpointer.logFrames > 0);
    expect(db.prepare('SELECT count(*) AS n FROM t').get()).toEqual({ n: 2_000 });
    db.close();
  });

  it('starts on demand, ends itself after a quiet spell, and starts again on the next write', async () => {
    const { file, db, write } = walDatabase();
    const checkpointer = createCheckpointer(file, { intervalMs: 10, idleMs: 100 });
    checkpointers.push(checkpointer);
    expect(checkpointer.running).toBe(false);
    write(10);
    checkpointer.wake();
    expect(checkpointer.running).toBe(true);
    await until(() => !checkpointer.running);
    checkpointer.wake();
    expect(checkpointer.running).toBe(true);
    await checkpointer.stop();
    expect(checkpointer.running).toBe(false);
    db.close();
  });

  it('checkpoints the store’s writes in the background, and stops with the store', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'latch-ckpt-'));
    dirs.push(dir);
    const url = `file:${join(dir, 'latch.db')}`;
    await migrate(url);
    const store = await createOidcStore('sqlite', url, { poolSize: 1 });
    const size = () => statSync(join(dir, 'latch.db')).size;
    const before = size();
    await Promise.all(
      Array.from({ length: 1_000 }, () => {
        const id = randomBytes(32).toString('base64url');
        const columns = { grantId: null, uid: null, userCode: null, accountId: null, clientId: 'c', expiresAt: new Date(Date.now() + 60_000), consumedAt: null };
        return store.upsert('ClientCredentials', id, JSON.stringify({ jti: id, kind: 'ClientCredentials', clientId: 'c' }), columns);
      }),
    );
    // Far below the connection's own backstop (CHECKPOINT_BACKSTOP_PAGES): only the thread copies
    // the rows from the log into the database file.
    await until(() => size() > before + 200_000);
    await store.close();
  });
});
