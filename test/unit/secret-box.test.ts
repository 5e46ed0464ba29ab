import { describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { createSecretBox, SecretKeyMissingError, SecretKeyUnknownError } from '../../src/federation/secret-box.js';
import { profileFrom } from '../../src/federation/upstream.js';

const key = () => randomBytes(32).toString('base64');

describe('secret box (upstream client secrets at rest)', () => {
  it('opens what it sealed, and keeps opening it after a new key is put first', async () => {
    const [oldKey, newKey] = [key(), key()];
    const sealed = await createSecretBox([oldKey]).seal('s3cret');
    expect(sealed).not.toContain('s3cret');
    const rotated = createSecretBox([newKey, oldKey]);
    expect(await rotated.open(sealed)).toBe('s3cret');
    expect(await rotated.open(await rotated.seal('next'))).toBe('next');
    // Once the old key is gone, its ciphertexts no longer open.
    await expect(createSecretBox([newKey]).open(sealed)).rejects.toBeInstanceOf(SecretKeyUnknownError);
  });

  it('refuses to seal without a key, and detects tampering', async () => {
    await expect(createSecretBox([]).seal('x')).rejects.toBeInstanceOf(SecretKeyMissingError);
    const box = createSecretBox([key()]);
    const [h, k, iv, ct, tag] = (await box.seal('value')).split('.');
    await expect(box.open([h, k, iv, ct!.replace(/^./, (c) => (c === 'A' ? 'B' : 'A')), tag].join('.'))).rejects.toThrow();
  });
});

describe('upstream claims to a profile', () => {
  const oidcClaims = { subject: 'sub', email: 'email', emailVerified: 'email_verified', name: 'name', givenName: 'given_name', familyName: 'family_name', picture: 'picture', username: 'preferred_username' };

  it('follows the mapping, dotted paths included, and treats only true (or "true") as verified', () => {
    expect(profileFrom({ sub: 'a', email: 'a@x.example', email_verified: 'true' }, oidcClaims)).toMatchObject({ subject: 'a', emailVerified: true });
    expect(profileFrom({ sub: 'a', email: 'a@x.example', email_verified: 'yes' }, oidcClaims).emailVerified).toBe(false);
    const mapped = profileFrom({ data: { uid: 7, mail: 'b@x.example' } }, { ...oidcClaims, subject: 'data.uid', email: 'data.mail' });
    expect(mapped).toMatchObject({ subject: '7', email: 'b@x.example', emailVerified: false });
  });

  it('drops unusable values and refuses an account without an identifier', () => {
    const p = profileFrom({ sub: 'a', email: 'not an email', picture: 'javascript:alert(1)', name: '  ' }, oidcClaims);
    expect(p).toMatchObject({ subject: 'a', email: undefined, picture: undefined, name: undefined });
    expect(() => profileFrom({ email: 'a@x.example' }, { ...oidcClaims, subject: 'uid' })).toThrow(/no identifier/);
  });
});
