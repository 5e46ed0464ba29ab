// After install: apply the patches under patches/ to installed packages, build argon2 for x86-64
// CPUs' vector instructions, generate both Prisma clients, and link the `latch` command into
// node_modules/.bin so `npx latch ...` works in a checkout (npm links only dependencies' bins).
// package.json declares no `bin` on purpose: with one, npx would install the checkout itself into
// its cache, running this script again (a rebuild of argon2 on every call), instead of this link.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, symlinkSync } from 'node:fs';
import { createRequire } from 'node:module';

// A patch that no longer applies (after an upgrade) fails the install instead of being skipped.
const patchPackage = createRequire(import.meta.url).resolve('patch-package/index.js');
execFileSync(process.execPath, [patchPackage, '--error-on-fail'], { stdio: 'inherit' });

execFileSync(process.execPath, ['scripts/build-argon2-variants.js'], { stdio: 'inherit' });

execFileSync(process.execPath, ['scripts/prisma-generate.js'], { stdio: 'inherit' });

if (existsSync('node_modules')) {
  mkdirSync('node_modules/.bin', { recursive: true });
  rmSync('node_modules/.bin/latch', { force: true });
  symlinkSync('../../bin/latch.js', 'node_modules/.bin/latch');
}
