import { createHash, randomBytes } from 'node:crypto';
import { withLock } from '../db/lock.js';
import type { Db } from '../db/prisma.js';
import { findThenDelete, purgeInBatches } from '../db/purge.js';
import type { Provider } from '../db/url.js';

/**
 * `email-change`: a move of the account to another address, asked for by its signed-in owner and
 * sent to that address; the account moves only when it is followed (see account-flows.ts).
 */
export type TokenPurpose = 'verify-email' | 'email-change' | 'reset-password' | 'magic-link';
/** Kept the same way, never emailed: the one showing of a new secret in the console (http/one-time-secrets.ts). */
type StoredPurpose = TokenPurpose | 'console-secret';

/**
 * The links that sign in, set a password or move the account to another address: a password
 * change or reset ends those outstanding, so whoever knew the old password keeps none of them.
 */
export const ACCESS_LINKS: TokenPurpose[] = ['reset-password', 'magic-link', 'email-change'];

const digest = (token: string) => createHash('sha256').update(token).digest('base64url');

/**
 * Single-use emailed tokens: 256 random bits, stored as a SHA-256 digest, bound to one purpose,
 * expiring, and consumed atomically (two concurrent uses cannot both succeed).
 */
export function createOneTimeTokens(prisma: Db, provider: Provider) {
  const isOf = (purposes: StoredPurpose | readonly StoredPurpose[]) => (typeof purposes === 'string' ? [purposes] : purposes);
  return {
    /**
     * Issues a token and, unless `replace` is false, invalidates the user's earlier unused tokens
     * of the same purpose (a new emailed link ends the last one; each new console secret has its own).
     */
    async issue(purpose: StoredPurpose, input: { userId: string; email: string; ttlSeconds: number; interactionUid?: string }, { replace = true } = {}) {
      const token = randomBytes(32).toString('base64url');
      const create = (db: Db) =>
        db.emailToken.create({
          data: {
            tokenHash: digest(token),
            purpose,
            userId: input.userId,
            email: input.email,
            interactionUid: input.interactionUid ?? null,
            expiresAt: new Date(Date.now() + input.ttlSeconds * 1000),
          },
        });
      if (!replace) await create(prisma);
      // Under the user's lock: at PostgreSQL's READ COMMITTED two requests at once would each
      // delete the other's older links and both insert, leaving two live.
      else {
        await withLock(prisma, provider, 'emailTokens', async (tx) => {
          await tx.emailToken.deleteMany({ where: { userId: input.userId, purpose, consumedAt: null } });
          await create(tx);
        }, input.userId);
      }
      return token;
    },

    /** Looks a token of one of the purposes up without using it (to render a confirmation page). */
    async peek(purposes: TokenPurpose | readonly TokenPurpose[], token: string) {
      const row = await prisma.emailToken.findUnique({ where: { tokenHash: digest(token) } });
      return row && isOf(purposes).includes(row.purpose as TokenPurpose) && !row.consumedAt && row.expiresAt > new Date() ? row : null;
    },

    /** The user's latest live link of a purpose, if any (an address change waiting for its confirmation). */
    pending: (userId: string, purpose: TokenPurpose) =>
      prisma.emailToken.findFirst({ where: { userId, purpose, consumedAt: null, expiresAt: { gt: new Date() } }, orderBy: { createdAt: 'desc' } }),

    /** Uses a token: returns its record once, or null when unknown, expired, used or of another purpose. */
    async consume(purposes: StoredPurpose | readonly StoredPurpose[], token: string) {
      const tokenHash = digest(token);
      const now = new Date();
      const { count } = await prisma.emailToken.updateMany({
        where: { tokenHash, purpose: { in: [...isOf(purposes)] }, consumedAt: null, expiresAt: { gt: now } },
        data: { consumedAt: now },
      });
      return count === 1 ? prisma.emailToken.findUnique({ where: { tokenHash } }) : null;
    },

    /** Makes a token used at `consumedAt` usable again (its use failed before it took effect), unless used since. */
    giveBack: (tokenHash: string, consumedAt: Date) => prisma.emailToken.updateMany({ where: { tokenHash, consumedAt }, data: { consumedAt: null } }),

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
