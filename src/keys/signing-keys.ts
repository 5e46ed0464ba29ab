import { calculateJwkThumbprint, exportJWK, generateKeyPair, type JWK } from 'jose';
import type { Db } from '../db/prisma.js';

// RS256 because OpenID Connect requires it for ID tokens; ES256 for compact JWT access tokens.
export const SIGNING_ALGS = ['RS256', 'ES256'] as const;

async function generateSigningKey(alg: (typeof SIGNING_ALGS)[number]) {
  const { privateKey } = await generateKeyPair(alg, { extractable: true, ...(alg === 'RS256' ? { modulusLength: 2048 } : {}) });
  const jwk = await exportJWK(privateKey);
  const kid = await calculateJwkThumbprint(jwk);
  return { kid, alg, jwk: { ...jwk, kid, alg, use: 'sig' } };
}

/** Creates one key per algorithm when the store has none. Call under the start-up lock. */
export async function ensureSigningKeys(prisma: Db): Promise<number> {
  let created = 0;
  for (const alg of SIGNING_ALGS) {
    if ((await prisma.signingKey.count({ where: { alg, retiresAt: null } })) > 0) continue;
    await prisma.signingKey.create({ data: await generateSigningKey(alg) });
    created += 1;
  }
  return created;
}

/**
 * A new key is published at once but signs only once it is this old. Each process reloads the key
 * set every KEY_REFRESH_INTERVAL, so by then every process publishes it (with one check to spare),
 * and a verifier fetching the JWKS from any of them finds every key in use.
 */
export const activationDelayMs = (refreshSeconds: number) => 2 * refreshSeconds * 1000;

/**
 * Adds a new key per algorithm. The previous keys go on signing until the new ones activate, and
 * each process switches at its next check after that; they stay published, for verification, for
 * `keepOldFor` seconds more (the longest lifetime of a token they signed), then are dropped.
 */
export async function rotateSigningKeys(prisma: Db, keepOldFor: number, refreshSeconds: number) {
  const fresh = await Promise.all(SIGNING_ALGS.map(generateSigningKey));
  const now = Date.now();
  const activatesAt = new Date(now + activationDelayMs(refreshSeconds));
  const retiresAt = new Date(activatesAt.getTime() + refreshSeconds * 1000 + keepOldFor * 1000);
  await prisma.$transaction([
    prisma.signingKey.updateMany({ where: { retiresAt: null }, data: { retiresAt } }),
    ...fresh.map((data) => prisma.signingKey.create({ data: { ...data, createdAt: new Date(now) } })),
  ]);
  return { kids: fresh.map((k) => k.kid), activatesAt, oldKeysRetireAt: retiresAt };
}

type KeyRow = { kid: string; alg: string; createdAt: Date; retiresAt: Date | null };
const live = (r: KeyRow, now: number) => !r.retiresAt || r.retiresAt.getTime() > now;

/**
 * Per algorithm, the key that signs: the newest one published for the activation delay, or while
 * none has been (the keys of a first start), the oldest.
 */
function signingKids(rows: KeyRow[], now: number, refreshSeconds: number): Set<string> {
  const kids = new Set<string>();
  for (const alg of SIGNING_ALGS) {
    const keys = rows.filter((r) => r.alg === alg && live(r, now)).sort((x, y) => x.createdAt.getTime() - y.createdAt.getTime());
    const active = keys.filter((r) => r.createdAt.getTime() <= now - activationDelayMs(refreshSeconds));
    const signer = active.at(-1) ?? keys[0];
    if (signer) kids.add(signer.kid);
  }
  return kids;
}

/** Identifies the published keys and the signing ones at `now`: changes when a key is added, activates or expires. */
function versionOf(rows: KeyRow[], now: number, refreshSeconds: number) {
  const signing = signingKids(rows, now, refreshSeconds);
  return rows
    .filter((r) => live(r, now))
    .map((r) => r.kid + (signing.has(r.kid) ? ':signing' : ''))
    .sort()
    .join(',');
}

/** The version of the key set as it stands now (see versionOf): a cheap check for a change. */
export async function signingKeysVersion(prisma: Db, refreshSeconds: number): Promise<string> {
  const rows = await prisma.signingKey.findMany({ select: { kid: true, alg: true, createdAt: true, retiresAt: true } });
  return versionOf(rows, Date.now(), refreshSeconds);
}

/**
 * The private JWKS for oidc-provider (the signing keys first: the provider signs with the first of
 * an algorithm, the others after), and the version of that very set: read together, so a key that
 * activates between two reads cannot leave a process signing with the old one, sure it has the new.
 */
export async function loadSigningJwks(prisma: Db, refreshSeconds: number): Promise<{ jwks: { keys: JWK[] }; version: string }> {
  await prisma.signingKey.deleteMany({ where: { retiresAt: { lt: new Date() } } });
  const rows = await prisma.signingKey.findMany({ orderBy: { createdAt: 'desc' } });
  const now = Date.now();
  const signing = signingKids(rows, now, refreshSeconds);
  const keys = [...rows.filter((r) => signing.has(r.kid)), ...rows.filter((r) => !signing.has(r.kid))].map((r) => r.jwk as JWK);
  return { jwks: { keys }, version: versionOf(rows, now, refreshSeconds) };
}
