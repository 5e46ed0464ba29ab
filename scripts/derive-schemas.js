// Derives the per-provider schemas from prisma/schema.prisma: they differ only in `provider`
// and the generated client's output folder.
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';

const canonical = readFileSync('prisma/schema.prisma', 'utf8');
const header = '// Generated from prisma/schema.prisma by `npm run prisma:derive`. Do not edit.\n';

for (const provider of ['sqlite', 'postgresql']) {
  const text = canonical
    .replace(/provider = "sqlite"/, `provider = "${provider}"`)
    .replace('output       = "../src/generated/sqlite"', `output       = "../../src/generated/${provider}"`);
  mkdirSync(`prisma/${provider}`, { recursive: true });
  writeFileSync(`prisma/${provider}/schema.prisma`, header + text);
}
console.log('derived prisma/sqlite/schema.prisma and prisma/postgresql/schema.prisma');
