// After install: generate both Prisma clients, and link the `latch` command into
// node_modules/.bin so `npx latch ...` works in a checkout (npm links only dependencies' bins).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, symlinkSync } from 'node:fs';

execFileSync(process.execPath, ['scripts/prisma-generate.js'], { stdio: 'inherit' });

if (existsSync('node_modules')) {
  mkdirSync('node_modules/.bin', { recursive: true });
  rmSync('node_modules/.bin/latch', { force: true });
  symlinkSync('../../bin/latch.js', 'node_modules/.bin/latch');
}
