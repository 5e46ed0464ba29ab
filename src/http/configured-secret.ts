import { createHash, timingSafeEqual } from 'node:crypto';

/** Constant-time comparison of a presented secret with a configured one (unset: nothing matches). */
export function matchesConfiguredSecret(presented: string | undefined, expected: string | undefined) {
  if (!presented || !expected) return false;
  // Digests first: timingSafeEqual needs equal lengths, and comparing them would tell the length.
  const digest = (v: string) => createHash('sha256').update(v).digest();
  return timingSafeEqual(digest(presented), digest(expected));
}
