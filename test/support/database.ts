import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import type { Db } from '../../src/db/prisma.js';
import { providerOf } from '../../src/db/url.js';

/**
 * A fresh, empty database for one test file: a SQLite file in a temp folder, or, when
 * TEST_DATABASE_URL names a PostgreSQL server, a new database on it (dropped afterwards).
 */
export async function createTestDatabase(): Promise<{ url: string; drop(): Promise<void> }> {
  const server = process.env.TEST_DATABASE_URL;
  if (!server?.startsWith('postgres')) {
    const dir = mkdtempSync(join(tmpdir(), 'latch-test-'));
    return { url: `file:${join(dir, 'latch.db')}`, drop: async () => rmSync(dir, { recursive: true, force: true }) };
  }
  const name = `latch_test_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: server });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(server);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async drop() {
      const c = new pg.Client({ connectionString: server });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
}

/**
 * Makes the database refuse `change` to `table` (the rows matching `when`, if given) until the
 * returned function is called, as a failing database would: a trigger that raises.
 */
export async function refuseChanges(server: { prisma: Db; config: { db: { url: string } } }, change: 'INSERT' | 'UPDATE', table: string, when?: string): Promise<() => Promise<unknown>> {
  const { prisma } = server;
  if (providerOf(server.config.db.url) === 'postgresql') {
    await prisma.$executeRawUnsafe(`CREATE OR REPLACE FUNCTION refuse_change() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'refused'; END $$ LANGUAGE plpgsql`);
    await prisma.$executeRawUnsafe(`CREATE TRIGGER refuse_change BEFORE ${change} ON ${table} FOR EACH ROW ${when ? `WHEN (${when})` : ''} EXECUTE FUNCTION refuse_change()`);
    return () => prisma.$executeRawUnsafe(`DROP TRIGGER refuse_change ON ${table}`);
  }
  await prisma.$executeRawUnsafe(`CREATE TRIGGER refuse_change BEFORE ${change} ON ${table} ${when ? `WHEN ${when}` : ''} BEGIN SELECT RAISE(ABORT, 'refused'); END`);
  return () => prisma.$executeRawUnsafe('DROP TRIGGER refuse_change');
}
