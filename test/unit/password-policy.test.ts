import { describe, expect, it } from 'vitest';
import { checkPassword, MAX_LENGTH, SCORED_LENGTH } from '../../src/passwords/password-policy.js';

describe('password policy', () => {
  it('refuses common passwords, their l33t spellings and keyboard walks; accepts a phrase of unrelated words', async () => {
    for (const weak of ['password1', 'p@$$w0rd123', 'P@ssw0rd!', 'M0nk3y!23', 'dr@g0nfly', 'qwerty123456', '1q2w3e4r5t']) {
      expect(await checkPassword(weak), weak).toMatch(/too easy to guess/);
    }
    expect(await checkPassword('correct horse battery staple')).toBeUndefined();
  });

  it('judges a long password by its first characters, and refuses one over the maximum length', async () => {
    const strong = 'violet harbour lantern sonnet';
    expect(await checkPassword(strong + '1'.repeat(MAX_LENGTH - strong.length))).toBeUndefined();
    expect(await checkPassword('1'.repeat(SCORED_LENGTH) + strong)).toMatch(/too easy to guess/);
    expect(await checkPassword('1'.repeat(MAX_LENGTH + 1))).toBe(`Use at most ${MAX_LENGTH} characters.`);
  });
});
