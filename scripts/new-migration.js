// Authors a migration for both providers: `npm run prisma:migration -- <name>`.
// Diffs the schema snapshot of the last migration against the current derived schema, offline,
// and writes prisma/migrations/<provider>/<NNNN>_<name>/migration.sql. The app applies pending
// migrations at start-up (src/db/migrate.ts).
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const name = (process.argv[2] ?? '').replace(/[^a-z0-9_]+/gi, '_').toLowerCase();
if (!name) {
  console.error('usage: npm run prisma:migration -- <name>');
  process.exit(2);
}
execFileSync(process.execPath, ['scripts/derive-schemas.js'], { stdio: 'inherit' });
const prismaCli = createRequire(import.meta.url).resolve('prisma/build/index.js');
const scratch = mkdtempSync(join(tmpdir(), 'latch-migration-'));
// The JS schema engine wants a reachable database even for a schema-to-schema diff.
const diffDatabase = {
  sqlite: `file:${join(scratch, 'diff.db')}`,
  postgresql: process.env.DIFF_DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/test',
};

for (const provider of ['sqlite', 'postgresql']) {
  const dir = `prisma/migrations/${provider}`;
  mkdirSync(dir, { recursive: true });
  const snapshot = join(dir, 'schema.snapshot.prisma');
  const from = existsSync(snapshot) ? ['--from-schema-datamodel', snapshot] : ['--from-empty'];
  const sql = execFileSync(
    process.execPath,
    [prismaCli, 'migrate', 'diff', ...from, '--to-schema-datamodel', `prisma/${provider}/schema.prisma`, '--script'],
    { env: { ...process.env, PRISMA_PROVIDER: provider, DATABASE_URL: diffDatabase[provider] }, encoding: 'utf8' },
  ).replace(/^Loaded Prisma config.*\n/m, '');
  if (!/\S/.test(sql.replace(/^--.*$/gm, ''))) {
    console.log(`${provider}: schema unchanged, no migration written`);
    continue;
  }
  const next = String(readdirSync(dir).filter((d) => /^\d{4}_/.test(d)).length + 1).padStart(4, '0');
  mkdirSync(join(dir, `${next}_${name}`));
  writeFileSync(join(dir, `${next}_${name}`, 'migration.sql'), sql);
  copyFileSync(`prisma/${provider}/schema.prisma`, snapshot);
  console.log(`${provider}: wrote ${dir}/${next}_${name}/migration.sql`);
}
