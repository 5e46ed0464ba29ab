import Keygrip from 'keygrip';
import { describe, expect, it } from 'vitest';
import { cookieEncryptionKeys, cookieKeyRing } from '../../src/keys/cookie-keys.js';
import { createSecretBox } from '../../src/federation/secret-box.js';

// Cookies signed by keygrip (Koa's default key ring) before an upgrade must still verify after
// it, and the other way round, so a rolling restart signs no one out.
describe('cookie key ring', () => {
  const keys = ['first cookie key 0123456789abcdef', 'older cookie key fedcba9876543210'];
  const data = '_session=f8Jd0Nkq2mXwq_t1h7r9Lz';

  it('signs as keygrip does', () => {
    expect(cookieKeyRing(keys).sign(data)).toBe(new Keygrip(keys).sign(data));
    expect(cookieKeyRing(keys).sign('latch.csrf=+/=é')).toBe(new Keygrip(keys).sign('latch.csrf=+/=é'));
  });

  it('finds the key that signed, the first one signing', () => {
    const ring = cookieKeyRing(keys);
    expect(ring.index(data, new Keygrip([keys[0]!]).sign(data))).toBe(0);
    expect(ring.index(data, new Keygrip([keys[1]!]).sign(data))).toBe(1);
    expect(ring.verify(data, new Keygrip([keys[1]!]).sign(data))).toBe(true);
    expect(new Keygrip(keys).index(data, ring.sign(data))).toBe(0);
  });

  it('refuses signatures it did not make', () => {
    const ring = cookieKeyRing(keys);
    const good = ring.sign(data);
    expect(ring.index(`${data}x`, good)).toBe(-1);
    expect(ring.index(data, new Keygrip(['someone else']).sign(data))).toBe(-1);
    // Truncated, padded, re-encoded or empty: keygrip compares the strings, and so does this.
    expect(ring.index(data, good.slice(0, -1))).toBe(-1);
    expect(ring.index(data, `${good}=`)).toBe(-1);
    expect(ring.index(data, `${good}A`)).toBe(-1);
    expect(ring.index(data, Buffer.from(good, 'base64url').toString('base64'))).toBe(-1);
    expect(ring.index(data, '')).toBe(-1);
    expect(ring.verify(data, 'not a signature at all')).toBe(false);
  });

  it('needs a key', () => {
    expect(() => cookieKeyRing([])).toThrow(/cookie key/);
  });
});

// What a cookie carries encrypted must open at every instance, and after a new key is put first.
describe('cookie encryption keys', () => {
  const keys = ['first cookie key 0123456789abcdef', 'older cookie key fedcba9876543210'];

  it('are the same at every instance, 32 bytes each, and differ by purpose and from the cookie keys', () => {
    const derived = cookieEncryptionKeys(keys, 'one purpose');
    expect(derived).toEqual(cookieEncryptionKeys([...keys], 'one purpose'));
    expect(derived.map((k) => Buffer.from(k, 'base64').length)).toEqual([32, 32]);
    expect(new Set([...derived, ...cookieEncryptionKeys(keys, 'another purpose')]).size).toBe(4);
    expect(derived.some((k) => keys.includes(Buffer.from(k, 'base64').toString()))).toBe(false);
  });

  it('open what the older key sealed once a new key is put first', async () => {
    const sealed = await createSecretBox(cookieEncryptionKeys(keys.slice(1), 'p')).seal('secret');
    expect(await createSecretBox(cookieEncryptionKeys(keys, 'p')).open(sealed)).toBe('secret');
    await expect(createSecretBox(cookieEncryptionKeys(keys, 'other')).open(sealed)).rejects.toThrow();
  });
});
