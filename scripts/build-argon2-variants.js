// Builds argon2's native binding for x86-64 CPUs with AVX-512 and with AVX2, into
// node_modules/argon2/variants/. The package's prebuilt binding uses SSE2 only, and a hash at the
// default cost takes two to three times as long with it. The patched argon2 loader picks the
// first variant the CPU runs at start, so node_modules built on one host stays safe on another.
// Any failure (no compiler, no Node headers) only leaves the prebuilt binding in use.
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const VARIANTS = { avx512f: '-mavx512f', avx2: '-mavx2' };

const pkg = resolve('node_modules/argon2');
// npm names its own node-gyp to install scripts.
const nodeGyp = process.env.npm_config_node_gyp;

if (process.platform !== 'linux' || process.arch !== 'x64' || !existsSync(pkg)) process.exit(0);
if (!nodeGyp || !existsSync(nodeGyp)) {
  console.warn('argon2: no node-gyp from npm; keeping the portable (SSE2) build');
  process.exit(0);
}

const work = mkdtempSync(join(tmpdir(), 'argon2-build-'));
const built = [];
rmSync(join(pkg, 'variants'), { recursive: true, force: true });
try {
  for (const [name, cflags] of Object.entries(VARIANTS)) {
    // Built in a copy: a build/ left in the package would be loaded by node-gyp-build in place of
    // the prebuilt binding on every CPU.
    const dir = join(work, name);
    try {
      cpSync(pkg, dir, { recursive: true, filter: (src) => !/[/\\](build|prebuilds|variants)$/.test(src) });
      execFileSync(process.execPath, [nodeGyp, 'rebuild'], {
        cwd: dir,
        stdio: ['ignore', 'ignore', 'pipe'],
        // binding.gyp asks node for node-addon-api's headers from the package's own directory.
        env: { ...process.env, CFLAGS: cflags, CXXFLAGS: cflags, NODE_PATH: resolve('node_modules') },
      });
      mkdirSync(join(pkg, 'variants'), { recursive: true });
      cpSync(join(dir, 'build/Release/argon2.node'), join(pkg, 'variants', `argon2.${name}.node`));
      built.push(name);
    } catch (error) {
      const detail = String(error.stderr ?? error.message).trim().split('\n').slice(-3).join(' / ');
      console.warn(`argon2: could not build for ${name}: ${detail}`);
    }
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
console.log(built.length ? `argon2: built for ${built.join(' and ')}, used where the CPU has them` : 'argon2: keeping the portable (SSE2) build');
