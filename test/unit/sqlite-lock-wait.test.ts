import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { whenUnlocked } from '../../src/db/sqlite-lock-wait.js';
import { migrate } from '../../src/db/migrate.js';
import { createOidcStore, type OidcStore } from '../../src/db/oidc-store.js';
import { sqliteFile } from '../../src/db/url.js';

describe('whenUnlocked', () => {
  let dir: string;
  let holder: Database.Database;
  let waiter: Database.Database;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'latch-lock-'));
    holder = new Database(join(dir, 'db.sqlite'));
    holder.pragma('journal_mode = WAL');
    holder.exec('CREATE TABLE t (n INTEGER)');
    waiter = new Database(join(dir, 'db.sqlite'), { timeout: 0 });
  });
  afterEach(() => {
    if (holder.inTransaction) holder.exec('ROLLBACK');
    holder.close();
    waiter.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const insert = () => waiter.prepare('INSERT INTO t VALUES (1)').run().changes;

  it('runs a statement at once when nothing holds the lock', () => {
    expect(whenUnlocked(insert)).toBe(1);
  });

  it('waits for another connection’s write lock on a timer, with the event loop free meanwhile', async () => {
    holder.exec('BEGIN IMMEDIATE');
    const ticks: number[] = [];
    const ticker = setInterval(() => ticks.push(Date.now()), 5);
    setTimeout(() => holder.exec('COMMIT'), 100);
    try {
      expect(await whenUnlocked(insert, 2_000)).toBe(1);
    } finally {
      clearInterval(ticker);
    }
    expect(ticks.length).toBeGreaterThan(5);
    expect(holder.prepare('SELECT count(*) AS n FROM t').get()).toEqual({ n: 1 });
  });

  it('fails with SQLITE_BUSY once the wait is over, and at once when told not to wait', async () => {
    holder.exec('BEGIN IMMEDIATE');
    await expect(Promise.resolve(whenUnlocked(insert, 50))).rejects.toMatchObject({ code: 'SQLITE_BUSY' });
    expect(() => whenUnlocked(insert, 0)).toThrow(expect.objectContaining({ code: 'SQLITE_BUSY' }));
  });

  it('does not run again a statement that failed for another reason', () => {
    let runs = 0;
    const failing = () => {
      runs += 1;
      return waiter.prepare('INSERT INTO missing VALUES (1)').run();
    };
    expect(() => whenUnlocked(failing)).toThrow(/no such table/);
    expect(runs).toBe(1);
  });
});

describe('the SQLite store while another connection holds the write lock', () => {
  const columns = { grantId: null, uid: null, userCode: null, accountId: null, clientId: null, expiresAt: new Date(Date.now() + 60_000), consumedAt: null };
  const session = (id: string) => JSON.stringify({ jti: id });
  let dir: string;
  let store: OidcStore;
  let holder: Database.Database;
  let closed: Promise<void> | undefined;
  const close = () => (closed ??= store.close());
  const sessions = () => holder.prepare("SELECT id FROM oidc_payloads WHERE model = 'Session' ORDER BY id").all();
  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'latch-lock-'));
    const url = `file:${join(dir, 'latch.db')}`;
    await migrate(url);
    store = await createOidcStore('sqlite', url, { poolSize: 1 });
    holder = new Database(sqliteFile(url));
    holder.exec('BEGIN IMMEDIATE');
    closed = undefined;
  });
  afterEach(async () => {
    if (holder.inTransaction) holder.exec('ROLLBACK');
    await close();
    holder.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('stores its writes in the order they were made once the lock is gone: a later destroy stays destroyed', async () => {
    const written = store.upsert('Session', 's1', session('s1'), columns);
    // A sign-out a moment later, while the first write still waits; the lock goes soon after.
    await new Promise((r) => setTimeout(r, 140));
    const destroyed = store.destroy('Session', 's1');
    setTimeout(() => holder.exec('COMMIT'), 10);
    await Promise.all([written, destroyed]);
    expect(sessions()).toEqual([]);
  });

  it('waits, when closed, for the writes still waiting for the lock', async () => {
    const written = store.upsert('Session', 's1', session('s1'), columns);
    await new Promise((r) => setTimeout(r, 20));
    setTimeout(() => holder.exec('COMMIT'), 80);
    await close();
    await written;
    expect(sessions()).toEqual([{ id: 's1' }]);
  });
});
