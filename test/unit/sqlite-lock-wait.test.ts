import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { whenUnlocked } from '../../src/db/sqlite-lock-wait.js';

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
