import { createHmac, createSecretKey, hkdfSync, randomBytes, timingSafeEqual, type KeyObject } from 'node:crypto';
import type { Db } from '../db/prisma.js';

/** Cookie signing keys: COOKIE_KEYS when set, else keys kept in the database (made on first start). */
export async function loadCookieKeys(prisma: Db, fromEnv: readonly string[] | undefined): Promise<string[]> {
  if (fromEnv?.length) return [...fromEnv];
  const rows = await prisma.cookieKey.findMany({ orderBy: { id: 'desc' } });
  if (rows.length > 0) return rows.map((r) => r.value);
  const created = await prisma.cookieKey.create({ data: { value: randomBytes(32).toString('base64url') } });
  return [created.value];
}

/** What Koa and oidc-provider sign cookies with (keygrip's interface). */
export type CookieKeyRing = { sign(data: string): string; verify(data: string, digest: string): boolean; index(data: string, digest: string): number };

/**
 * The cookie signing key ring Koa and oidc-provider sign and check cookies with: keygrip's
 * format (HMAC-SHA1 of `name=value`, base64url), so cookies signed before still verify, and its
 * rotation (the first key signs, every key verifies). keygrip compares two signatures through
 * tsscmp, which draws 32 random bytes and computes two more HMACs to compare in constant time:
 * three HMACs and a random draw for every signed cookie read, several on each sign-in request.
 * Node's timingSafeEqual compares the one HMAC in constant time by itself.
 */
export function cookieKeyRing(keys: readonly string[]): CookieKeyRing {
  if (keys.length === 0) throw new Error('at least one cookie key is needed');
  const secrets: KeyObject[] = keys.map((key) => createSecretKey(Buffer.from(key)));
  const mac = (data: string, key: KeyObject) => createHmac('sha1', key).update(data).digest();
  const sign = (data: string) => mac(data, secrets[0]!).toString('base64url');
  function index(data: string, digest: string) {
    const presented = Buffer.from(String(digest), 'base64url');
    // Only a 20-byte value (a SHA-1 digest) can match; its length is no secret.
    if (presented.length !== 20 || presented.toString('base64url') !== digest) return -1;
    return secrets.findIndex((key) => timingSafeEqual(presented, mac(data, key)));
  }
  return { sign, verify: (data, digest) => index(data, digest) > -1, index };
}

/**
 * Keys to encrypt what a cookie carries, in secret-box's format (32 bytes, base64): one for each
 * cookie key, in the same order (the first encrypts, all decrypt), derived with HKDF-SHA256 under a
 * label naming `purpose`. Every instance derives the same keys; they reveal nothing of the
 * signing keys, nor of another purpose's.
 */
export function cookieEncryptionKeys(keys: readonly string[], purpose: string): string[] {
  return keys.map((key) => Buffer.from(hkdfSync('sha256', Buffer.from(key), new Uint8Array(0), `latch cookie encryption: ${purpose}`, 32)).toString('base64'));
}
