import { createHash, randomBytes } from 'node:crypto';
import type { Db } from '../db/prisma.js';
import { findThenDelete, purgeInBatches } from '../db/purge.js';

export type TokenPurpose = 'verify-email' | 'reset-password' | 'magic-link';
/** Kept the same way, never emailed: the one showing of a new secret in the console (http/one-time-secrets.ts). */
type StoredPurpose = TokenPurpose | 'console-secret';

/** The links that sign in or set a password: a password change or reset ends those outstanding. */
export const ACCESS_LINKS: TokenPurpose[] = ['reset-password', 'magic-link'];

const digest = (token: string) => createHash('sha256').update(token).digest('base64url');

/**
 * Single-use emailed tokens: 256 random bits, stored as a SHA-256 digest, bound to one purpose,
 * expiring, and consumed atomically (two concurrent uses cannot both succeed).
 */
export function createOneTimeTokens(prisma: Db) {
  return {
    /**
     * Issues a token and, unless `replace` is false, invalidates the user's earlier unused tokens
     * of the same purpose (a new emailed link ends the last one; each new console secret has its own).
     */
    async issue(purpose: StoredPurpose, input: { userId: string; email: string; ttlSeconds: number; interactionUid?: string }, { replace = true } = {}) {
      const token = randomBytes(32).toString('base64url');
      await prisma.$transaction([
        ...(replace ? [prisma.emailToken.deleteMany({ where: { userId: input.userId, purpose, consumedAt: null } })] : []),
        prisma.emailToken.create({
          data: {
            tokenHash: digest(token),
            purpose,
            userId: input.userId,
            email: input.email,
            interactionUid: input.interactionUid ?? null,
            expiresAt: new Date(Date.now() + input.ttlSeconds * 1000),
          },
        }),
      ]);
      return token;
    },

    /** Looks a token up without using it (to render a confirmation page). */
    async peek(purpose: TokenPurpose, token: string) {
      const row = await prisma.emailToken.findUnique({ where: { tokenHash: digest(token) } });
      return row && row.purpose === purpose && !row.consumedAt && row.expiresAt > new Date() ? row : null;
    },

    /** Uses a token: returns its record once, or null when unknown, expired, used or of another purpose. */
    async consume(purpose: StoredPurpose, token: string) {
      const tokenHash = digest(token);
      const now = new Date();
      const { count } = await prisma.emailToken.updateMany({
        where: { tokenHash, purpose, consumedAt: null, expiresAt: { gt: now } },
        data: { consumedAt: now },
      });
      return count === 1 ? prisma.emailToken.findUnique({ where: { tokenHash } }) : null;
    },

    /** Drops a user's unused tokens, of the given purposes or all (after a password reset, say). */
    revokeAll: (userId: string, purposes?: TokenPurpose[]) =>
      prisma.emailToken.deleteMany({ where: { userId, consumedAt: null, ...(purposes ? { purpose: { in: purposes } } : {}) } }),

    /** Deletes tokens that expired over a day ago, in small paced batches (see purge.ts); returns how many. */
    purgeExpired: (signal?: AbortSignal) => {
      const before = new Date(Date.now() - 24 * 3600_000);
      return purgeInBatches(
        findThenDelete(
          async (take) => (await prisma.emailToken.findMany({ where: { expiresAt: { lt: before } }, select: { tokenHash: true }, take })).map((t) => t.tokenHash),
          (hashes) => prisma.emailToken.deleteMany({ where: { tokenHash: { in: hashes } } }),
        ),
        { signal },
      );
    },
  };
}

export type OneTimeTokens = ReturnType<typeof createOneTimeTokens>;
