import argon2 from 'argon2';
import { randomBytes } from 'node:crypto';
import { availableParallelism } from 'node:os';

export type Argon2Params = { memoryCost: number; timeCost: number; parallelism: number };

export type PasswordHasher = ReturnType<typeof createPasswordHasher>;

/**
 * At most `max` hashes at a time; the rest wait in order. argon2 runs on libuv's thread pool and
 * saturates a core per hash: without a cap, a burst of sign-ins takes every core from the event
 * loop and token requests wait behind it.
 */
function createLimiter(max: number) {
  let running = 0;
  const waiting: (() => void)[] = [];
  return async function limit<T>(work: () => Promise<T>): Promise<T> {
    if (running >= max) await new Promise<void>((resolve) => waiting.push(resolve));
    running += 1;
    try {
      return await work();
    } finally {
      running -= 1;
      waiting.shift()?.();
    }
  };
}

// NIST 800-63B (5.1.1.2): a password is hashed in its NFKC form, so the same characters typed as
// one code point (é) or as a letter and an accent (e + ◌́), as keyboards and systems differ, are
// the same password. A hash made before this, of the text as it was typed, still verifies.
const normalized = (password: string) => password.normalize('NFKC');
const forms = (password: string) => {
  const nfkc = normalized(password);
  return nfkc === password ? [password] : [nfkc, password];
};

/** argon2id hashing with the configured cost; the one place that knows the parameters. */
export function createPasswordHasher(params: Argon2Params, maxConcurrent = availableParallelism()) {
  const options = { type: argon2.argon2id as 2, ...params };
  const limit = createLimiter(maxConcurrent);
  // Verified against when the account does not exist, so unknown users cost the same time.
  let dummyHash: Promise<string> | undefined;

  return {
    hash: (password: string) => limit(() => argon2.hash(normalized(password), options)),
    async verify(hash: string | null | undefined, password: string): Promise<boolean> {
      if (!hash) {
        dummyHash ??= argon2.hash(randomBytes(16).toString('hex'), options);
        const dummy = await dummyHash;
        // As many hashes as a wrong password for an existing account takes.
        for (const form of forms(password)) await limit(() => argon2.verify(dummy, form)).catch(() => false);
        return false;
      }
      for (const form of forms(password)) {
        if (await limit(() => argon2.verify(hash, form)).catch(() => false)) return true;
      }
      return false;
    },
    needsRehash: (hash: string) => argon2.needsRehash(hash, options),
  };
}

/**
 * CPU seconds this process's password hashes have taken so far, as the threads that computed them
 * count it: with the sign-ins' count, what a sign-in's hash costs against the rest of its CPU.
 * Undefined with argon2's prebuilt binding (ARGON2_BUILD=portable), which cannot tell, and once a
 * hash with more than one lane (ARGON2_PARALLELISM > 1) has run on libargon2's own threads.
 */
export const passwordHashCpuSeconds = (): number | undefined => argon2.hashCpuSeconds();
