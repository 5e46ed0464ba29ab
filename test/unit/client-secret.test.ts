import { describe, expect, it } from 'vitest';
import { clientSecretMatches, generateClientSecret, hashClientSecret } from '../../src/clients/client-secret.js';

describe('client secrets', () => {
  it('are stored as a digest that matches only the original', () => {
    const secret = generateClientSecret();
    const stored = hashClientSecret(secret);
    expect(stored).not.toContain(secret);
    expect(clientSecretMatches(stored, secret)).toBe(true);
    expect(clientSecretMatches(stored, `${secret}x`)).toBe(false);
    expect(clientSecretMatches(undefined, secret)).toBe(false);
    // A plain-text value in the store never matches, even when equal.
    expect(clientSecretMatches(secret, secret)).toBe(false);
  });

  it('carry 256 bits of randomness', () => {
    expect(Buffer.from(generateClientSecret(), 'base64url')).toHaveLength(32);
  });
});
