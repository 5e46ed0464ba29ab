import Keygrip from 'keygrip';
import { describe, expect, it } from 'vitest';
import { cookieKeyRing } from '../../src/keys/cookie-keys.js';

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
