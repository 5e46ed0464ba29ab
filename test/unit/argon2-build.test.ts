import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import argon2 from 'argon2';
import { describe, expect, it } from 'vitest';

// patches/argon2+*.patch with scripts/build-argon2-variants.js (run by `npm install`): argon2's
// binding built for AVX-512 or AVX2 is loaded where the CPU has them, the portable one elsewhere.
const require = createRequire(import.meta.url);
const argon2Dir = dirname(require.resolve('argon2'));
const variants = join(argon2Dir, 'variants');
const cpuFlags = new Set(process.platform === 'linux' ? (/^flags\s*:(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? '').trim().split(/\s+/) : []);
const expected = cpuFlags.has('avx512f') && existsSync(join(variants, 'argon2.avx512f.node')) ? 'avx512f' : cpuFlags.has('avx2') && existsSync(join(variants, 'argon2.avx2.node')) ? 'avx2' : undefined;
const cheap = { type: argon2.argon2id, memoryCost: 1024, timeCost: 1, parallelism: 1 } as const;

/** Runs argon2 in a node of its own with the portable binding. */
async function withPortableBuild(script: string, ...args: string[]): Promise<string> {
  const { stdout } = await promisify(execFile)(process.execPath, ['-e', script, ...args], {
    cwd: process.cwd(),
    env: { ...process.env, ARGON2_BUILD: 'portable' },
  });
  return stdout.trim();
}

describe.skipIf(!expected)("argon2's binding for this CPU", () => {
  it(`is the ${expected} build`, () => {
    const loaded = Object.keys(require.cache).filter((file) => file.startsWith(argon2Dir) && file.endsWith('.node'));
    expect(loaded).toEqual([join(variants, `argon2.${expected}.node`)]);
  });

  it('makes the same hashes as the portable build, each verifying the other', async () => {
    const salt = Buffer.alloc(16, 7);
    const ours = await argon2.hash('violet kettle orbit 42', { ...cheap, salt });
    const portable = await withPortableBuild(
      `require('argon2').hash(process.argv[1], { type: 2, memoryCost: 1024, timeCost: 1, parallelism: 1, salt: Buffer.alloc(16, 7) }).then(console.log)`,
      'violet kettle orbit 42',
    );
    expect(ours).toBe(portable);

    const fresh = await argon2.hash('violet kettle orbit 42', cheap);
    const verified = await withPortableBuild(`require('argon2').verify(process.argv[1], process.argv[2]).then(console.log)`, fresh, 'violet kettle orbit 42');
    expect(verified).toBe('true');
  });
});
