import { hash, randomBytes, timingSafeEqual } from 'node:crypto';

// Client secrets are 256 random bits, so a plain SHA-256 digest is enough to store them safely;
// a slow hash would only slow down the token endpoint.
const PREFIX = 'sha256:';

export const generateClientSecret = () => randomBytes(32).toString('base64url');

// Checked on every token request: a one-shot digest, without a Hash object.
export const hashClientSecret = (secret: string) => PREFIX + hash('sha256', secret, 'base64url');

export function clientSecretMatches(stored: string | undefined, presented: string): boolean {
  if (!stored?.startsWith(PREFIX)) return false;
  const a = Buffer.from(stored);
  const b = Buffer.from(hashClientSecret(presented));
  return a.length === b.length && timingSafeEqual(a, b);
}
