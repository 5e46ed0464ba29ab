import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import argon2 from 'argon2';
import { afterAll, describe, expect, it } from 'vitest';
import { passwordHashCpuSeconds } from '../../src/passwords/passwords.js';

// About a tenth of a second here: the hash, not the call around it, is nearly all of the CPU.
const slow = { type: argon2.argon2id, memoryCost: 19_456, timeCost: 20, parallelism: 1 } as const;
const latchBuild = passwordHashCpuSeconds() !== undefined;
const cpuSeconds = (since: NodeJS.CpuUsage) => {
  const { user, system } = process.cpuUsage(since);
  return (user + system) / 1e6;
};

describe.runIf(process.platform === 'linux')('the CPU time of password hashes', () => {
  afterAll(() => argon2.setHashPriority(0));

  it.runIf(latchBuild)('is counted by the thread that hashes, on the thread pool and on threads of their own', async () => {
    for (const nice of [0, 10]) {
      argon2.setHashPriority(nice);
      const counted = passwordHashCpuSeconds()!;
      const cpu = process.cpuUsage();
      await argon2.hash('violet kettle orbit 42', slow);
      const hashed = passwordHashCpuSeconds()! - counted;
      const processCpu = cpuSeconds(cpu);
      expect(hashed).toBeGreaterThan(0.5 * processCpu);
      expect(hashed).toBeLessThanOrEqual(processCpu);
    }
  });

  it.runIf(latchBuild)('is unknown once a hash has run on more than one lane, whose threads are libargon2\'s own', async () => {
    const { stdout } = await promisify(execFile)(process.execPath, [
      '--import',
      'tsx',
      '-e',
      `import('./src/passwords/passwords.ts').then(async (m) => {
        const argon2 = (await import('argon2')).default;
        await argon2.hash('x', { type: argon2.argon2id, memoryCost: 4096, timeCost: 1, parallelism: 1 });
        const one = m.passwordHashCpuSeconds();
        await argon2.hash('x', { type: argon2.argon2id, memoryCost: 4096, timeCost: 1, parallelism: 2 });
        console.log(one > 0, String(m.passwordHashCpuSeconds()));
      })`,
    ]);
    expect(stdout.trim()).toBe('true undefined');
  });

  it('is unknown with the prebuilt binding', async () => {
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ['--import', 'tsx', '-e', `import('./src/passwords/passwords.ts').then((m) => console.log(String(m.passwordHashCpuSeconds())))`],
      { env: { ...process.env, ARGON2_BUILD: 'portable' } },
    );
    expect(stdout.trim()).toBe('undefined');
  });
});
