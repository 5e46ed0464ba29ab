import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const BIN = fileURLToPath(new URL('../../bin/latch.js', import.meta.url));

/**
 * Runs `node` with these arguments; resolves with its exit code and output once it has ended (or
 * once `timeoutMs` has passed, when it is killed and the code is null).
 */
export function runNode(args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv; stdin?: string; timeoutMs?: number } = {}) {
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd: options.cwd, env: options.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'], timeout: options.timeoutMs });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(options.stdin ?? '');
  });
}

/** Runs the real `latch` command against a database; resolves with its exit code and output. */
export function latch(args: string[], options: { databaseUrl: string; stdin?: string; env?: Record<string, string> }) {
  return runNode([BIN, ...args], {
    env: { ...process.env, DATABASE_URL: options.databaseUrl, LOG_LEVEL: 'silent', ARGON2_MEMORY_KIB: '1024', ARGON2_TIME_COST: '1', ...options.env },
    stdin: options.stdin,
  });
}
