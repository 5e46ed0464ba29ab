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
 * Adds a new current key per algorithm. The previous keys stay published for verification until
 * `keepOldFor` seconds have passed (the longest lifetime of a token they signed), then are dropped.
 */
export async function rotateSigningKeys(prisma: Db, keepOldFor: number) {
  const fresh = await Promise.all(SIGNING_ALGS.map(generateSigningKey));
  const retiresAt = new Date(Date.now() + keepOldFor * 1000);
  await prisma.$transaction([
    prisma.signingKey.updateMany({ where: { retiresAt: null }, data: { retiresAt } }),
    ...fresh.map((data) => prisma.signingKey.create({ data })),
  ]);
  return { kids: fresh.map((k) => k.kid), oldKeysRetireAt: retiresAt };
}

/** Identifies the set of published keys: changes when a key is added or a retiring one expires. */
export async function signingKeysVersion(prisma: Db): Promise<string> {
  const rows = await prisma.signingKey.findMany({ select: { kid: true, retiresAt: true }, orderBy: { kid: 'asc' } });
  const now = Date.now();
  return rows
    .filter((r) => !r.retiresAt || r.retiresAt.getTime() > now)
    .map((r) => `${r.kid}${r.retiresAt ? ':retiring' : ''}`)
    .join(',');
}

/** The private JWKS for oidc-provider: current keys first (they sign), retiring keys after. */
export async function loadSigningJwks(prisma: Db): Promise<{ keys: JWK[] }> {
  await prisma.signingKey.deleteMany({ where: { retiresAt: { lt: new Date() } } });
  const rows = await prisma.signingKey.findMany({ orderBy: { createdAt: 'desc' } });
  const current = rows.filter((r) => r.retiresAt === null);
  const retiring = rows.filter((r) => r.retiresAt !== null);
  return { keys: [...current, ...retiring].map((r) => r.jwk as JWK) };
}
