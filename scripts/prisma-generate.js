// Generates both Prisma clients (one per provider) after install. Offline: prisma.config.ts
// selects the JS engine, so nothing is downloaded.
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';

const prismaCli = createRequire(import.meta.url).resolve('prisma/build/index.js');
for (const provider of ['sqlite', 'postgresql']) {
  execFileSync(process.execPath, [prismaCli, 'generate'], {
    stdio: ['ignore', 'ignore', 'inherit'],
    env: { ...process.env, PRISMA_PROVIDER: provider, PRISMA_HIDE_UPDATE_MESSAGE: '1' },
  });
}
console.log('generated Prisma clients for sqlite and postgresql');
