// Prisma CLI configuration. The JS schema engine with a driver adapter keeps the CLI offline
// (no native engine download). PRISMA_PROVIDER picks the derived schema: sqlite (default) or
// postgresql. The app itself never reads this file: it migrates at start-up (src/db/migrate.ts).
import { defineConfig } from 'prisma/config';
import { PrismaBetterSQLite3 } from '@prisma/adapter-better-sqlite3';
import { PrismaPg } from '@prisma/adapter-pg';

const provider = process.env.PRISMA_PROVIDER === 'postgresql' ? 'postgresql' : 'sqlite';
const url = process.env.DATABASE_URL ?? (provider === 'sqlite' ? 'file:./data/latch.db' : 'postgresql://localhost/latch');
// The schema's `url = env("DATABASE_URL")` must resolve, or the CLI falls back to downloading engines.
process.env.DATABASE_URL = url;

export default defineConfig({
  experimental: { adapter: true },
  schema: `prisma/${provider}/schema.prisma`,
  engine: 'js',
  adapter: async () =>
    provider === 'sqlite' ? new PrismaBetterSQLite3({ url }) : new PrismaPg({ connectionString: url }),
});
