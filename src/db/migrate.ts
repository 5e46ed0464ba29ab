import { readdirSync, readFileSync } from 'node:fs';
import { fromRoot } from '../paths.js';
import { join } from 'node:path';
import type Database from 'better-sqlite3';
import { providerOf, sqliteFile, type Provider } from './url.js';

const MIGRATIONS_ROOT = fromRoot('prisma', 'migrations');
const TABLE = '_latch_migrations';
// Any constant works; every Latch process uses the same one to serialise migrations.
const PG_LOCK_ID = 0x1a7c4;

// Only the configured database's driver is loaded, as everywhere else (pg took 17 ms of a SQLite start).
const openSqlite = async (url: string) => new (await import('better-sqlite3')).default(sqliteFile(url), { timeout: 10_000 });
const connectPostgres = async (url: string) => {
  // Bounded, so a host that takes the connection and never answers stops the start with a reason.
  const client = new (await import('pg')).default.Client({ connectionString: url, connectionTimeoutMillis: 10_000 });
  await client.connect();
  return client;
};

type Exec = (sql: string, params?: unknown[]) => Promise<unknown[]>;

/** The names of the migrations this version ships for a provider, in order. */
export const migrationNames = (provider: Provider) => migrationFiles(provider).map((m) => m.name);

function migrationFiles(provider: Provider) {
  const dir = join(MIGRATIONS_ROOT, provider);
  return readdirSync(dir, { withFileTypes: true })
    .filter((d) => d.isDirectory() && /^\d{4}_/.test(d.name))
    .map((d) => d.name)
    .sort()
    .map((name) => ({ name, sql: readFileSync(join(dir, name, 'migration.sql'), 'utf8') }));
}

async function appliedMigrations(exec: Exec): Promise<string[]> {
  await exec(`CREATE TABLE IF NOT EXISTS ${TABLE} (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)`);
  const rows = (await exec(`SELECT name FROM ${TABLE} ORDER BY name`)) as { name: string }[];
  return rows.map((r) => r.name);
}

async function pendingFiles(provider: Provider, exec: Exec) {
  const applied = new Set(await appliedMigrations(exec));
  return migrationFiles(provider).filter(({ name }) => !applied.has(name));
}

/**
 * Applies the pending migrations in order, each in a transaction with its record, so a migration
 * is applied and recorded together or not at all. The caller holds the database lock. Plain SQL
 * files in order need no more than this loop; umzug, which did it before, loaded a command-line
 * framework with it: about 190 ms and 20 MB of a first start here.
 */
async function applyPending(provider: Provider, exec: Exec, inTransaction: (fn: () => Promise<void>) => Promise<void>): Promise<string[]> {
  const pending = await pendingFiles(provider, exec);
  for (const { name, sql } of pending) {
    await inTransaction(async () => {
      await exec(sql);
      await exec(`INSERT INTO ${TABLE} (name, applied_at) VALUES ($1, $2)`, [name, new Date().toISOString()]);
    });
  }
  return pending.map(({ name }) => name);
}

/** Applies pending migrations under a lock, so processes starting together apply each once. */
export async function migrate(url: string): Promise<string[]> {
  return providerOf(url) === 'sqlite' ? migrateSqlite(url) : migratePostgres(url);
}

/** Names of migrations not yet applied (for readiness checks and `latch migrate --status`). */
export async function pendingMigrations(url: string): Promise<string[]> {
  return withConnection(url, async (exec) => (await pendingFiles(providerOf(url), exec)).map(({ name }) => name));
}

/**
 * Switching to WAL needs the file to itself, and SQLite answers SQLITE_BUSY at once (no busy
 * wait) while another process starting at the same moment holds it: retry for a while.
 */
async function enableWal(db: Database.Database) {
  for (let attempt = 0; ; attempt += 1) {
    try {
      if (db.pragma('journal_mode', { simple: true }) !== 'wal') db.pragma('journal_mode = WAL');
      return;
    } catch (err) {
      if ((err as { code?: string }).code !== 'SQLITE_BUSY' || attempt >= 100) throw err;
      await new Promise((r) => setTimeout(r, 50 + Math.random() * 50));
    }
  }
}

async function migrateSqlite(url: string): Promise<string[]> {
  const db = await openSqlite(url);
  try {
    // WAL lets readers proceed while a writer commits; it is a property of the file, set once.
    await enableWal(db);
    db.pragma('foreign_keys = ON');
    const exec = sqliteExec(db);
    // BEGIN IMMEDIATE takes the write lock now: a second process waits here, then finds nothing pending.
    db.exec('BEGIN IMMEDIATE');
    try {
      const applied = await applyPending('sqlite', exec, (fn) => fn());
      db.exec('COMMIT');
      return applied;
    } catch (err) {
      db.exec('ROLLBACK');
      throw err;
    }
  } finally {
    db.close();
  }
}

async function migratePostgres(url: string): Promise<string[]> {
  const client = await connectPostgres(url);
  try {
    await client.query('SELECT pg_advisory_lock($1)', [PG_LOCK_ID]);
    const exec: Exec = async (sql, params) => (await client.query(sql, params)).rows;
    const inTransaction = async (fn: () => Promise<void>) => {
      await client.query('BEGIN');
      try {
        await fn();
        await client.query('COMMIT');
      } catch (err) {
        await client.query('ROLLBACK');
        throw err;
      }
    };
    return await applyPending('postgresql', exec, inTransaction);
  } finally {
    await client.query('SELECT pg_advisory_unlock($1)', [PG_LOCK_ID]).catch(() => {});
    await client.end();
  }
}

function sqliteExec(db: Database.Database): Exec {
  return async (sql, params = []) => {
    const positional = sql.replace(/\$\d+/g, '?');
    if (params.length === 0 && !/^\s*SELECT/i.test(sql)) {
      db.exec(sql);
      return [];
    }
    const stmt = db.prepare(positional);
    return stmt.reader ? stmt.all(...params) : (stmt.run(...params), []);
  };
}

async function withConnection<T>(url: string, fn: (exec: Exec) => Promise<T>): Promise<T> {
  if (providerOf(url) === 'sqlite') {
    const db = await openSqlite(url);
    try {
      return await fn(sqliteExec(db));
    } finally {
      db.close();
    }
  }
  const client = await connectPostgres(url);
  try {
    return await fn(async (sql, params) => (await client.query(sql, params)).rows);
  } finally {
    await client.end();
  }
}
