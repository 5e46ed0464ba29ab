import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { runNode } from '../support/cli.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** Runs a bench script as `npm run bench` does, through tsx. */
const bench = (script: string, args: string[]) => runNode(['--import', 'tsx', script, ...args], { cwd: ROOT });

describe('the bench commands', () => {
  it('print their options with --help', async () => {
    const run = await bench('bench/run.ts', ['--help']);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('npm run bench -- [options]');
    expect(run.stdout).toContain('discovery,cc-opaque,cc-jwt,introspection,userinfo,refresh,login,mix');
    const purge = await bench('bench/purge.ts', ['-h']);
    expect(purge.code).toBe(0);
    expect(purge.stdout).toContain('--database sqlite');
  });

  it('refuse a misspelt target, scenario or option before starting anything, saying what is wrong', async () => {
    const target = await bench('bench/run.ts', ['--targets', 'sqlite,postgresql']);
    expect(target.code).toBe(2);
    expect(target.stderr).toContain('--targets: ');
    expect(target.stderr).toContain('"postgres"');
    expect(target.stdout).not.toContain('machine:');

    const scenario = await bench('bench/run.ts', ['--scenario', 'introspect', '--duration', '0', '--rounds', '1.5']);
    expect(scenario.code).toBe(2);
    expect(scenario.stderr).toMatch(/--scenario: .*"introspection"/);
    expect(scenario.stderr).toContain('--duration: ');
    expect(scenario.stderr).toContain('--rounds: ');

    const option = await bench('bench/run.ts', ['--durations', '5']);
    expect(option.code).toBe(2);
    expect(option.stderr).toContain("Unknown option '--durations'");
    expect(option.stderr).toContain('npm run bench -- [options]');

    // A database named anything but sqlite or postgres used to run on SQLite.
    const purge = await bench('bench/purge.ts', ['--database', 'postgresql']);
    expect(purge.code).toBe(2);
    expect(purge.stderr).toContain('--database: ');
  });
});
