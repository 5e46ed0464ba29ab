import { createHash, randomBytes } from 'node:crypto';
import { withLock } from '../db/lock.js';
import type { Db } from '../db/prisma.js';
import type { Provider } from '../db/url.js';
import type { User } from '../users/users.service.js';
import { mayManageOwnApps } from './apps.service.js';

// Keys are recognisable in logs and secret scanners by their prefix.
export const API_KEY_PREFIX = 'latch_';
const digest = (key: string) => createHash('sha256').update(key).digest('base64url');

/** The roles of an app's owner: what the app's credentials may act with. */
export type OwnerRoles = Pick<User, 'active' | 'isAdmin' | 'isDeveloper'>;
// A deleted owner holds none (clients keep a deleted owner's id).
const NO_ROLES: OwnerRoles = { active: false, isAdmin: false, isDeveloper: false };

/** An app's API keys: one active at a time, shown once, stored as a digest. */
export function createApiKeysService(prisma: Db, provider: Provider) {
  /**
   * The roles the app's owner holds now; null for an app no user owns (registered by the CLI or by
   * a client with latch:admin), undefined for no such app. Read at each use, never cached, so that
   * a changed role applies at once to the app's keys and tokens.
   */
  async function ownerRoles(clientId: string): Promise<OwnerRoles | null | undefined> {
    const app = await prisma.client.findUnique({ where: { clientId }, select: { ownerId: true } });
    if (!app) return undefined;
    if (!app.ownerId) return null;
    return (await prisma.user.findUnique({ where: { id: app.ownerId }, select: { active: true, isAdmin: true, isDeveloper: true } })) ?? NO_ROLES;
  }

  return {
    ownerRoles,

    /** Deactivates every earlier key of the app and returns the new key (the only time it is shown). */
    async create(clientId: string, createdById?: string) {
      const key = API_KEY_PREFIX + randomBytes(32).toString('base64url');
      // Under the app's lock: at PostgreSQL's READ COMMITTED two requests at once would each
      // deactivate the keys before them and both insert, leaving two keys active.
      const row = await withLock(prisma, provider, 'apiKeys', async (tx) => {
        await tx.apiKey.updateMany({ where: { clientId, active: true }, data: { active: false } });
        return tx.apiKey.create({ data: { clientId, keyHash: digest(key), prefix: key.slice(0, API_KEY_PREFIX.length + 6), createdById: createdById ?? null } });
      }, clientId);
      return { key, id: row.id, prefix: row.prefix, createdAt: row.createdAt };
    },

    list: (clientId: string) =>
      prisma.apiKey.findMany({
        where: { clientId },
        orderBy: { createdAt: 'desc' },
        select: { id: true, prefix: true, active: true, createdAt: true, lastUsedAt: true },
      }),

    /**
     * The app an active key belongs to, or undefined; also undefined while the app's owner may not
     * manage their apps themselves (disabled, deleted, or no longer a developer or admin).
     */
    async verify(key: string): Promise<string | undefined> {
      if (!key.startsWith(API_KEY_PREFIX)) return undefined;
      const row = await prisma.apiKey.findUnique({ where: { keyHash: digest(key) } });
      if (!row?.active) return undefined;
      // A key manages its app on its owner's behalf: it acts only while the owner could, by the
      // same rule as the owner's own calls (apps.service), and stops with their role or account.
      const owner = await ownerRoles(row.clientId);
      if (owner === undefined || (owner && !mayManageOwnApps(owner))) return undefined;
      // Coarse last-use tracking: at most one write a minute per key.
      if (!row.lastUsedAt || Date.now() - row.lastUsedAt.getTime() > 60_000) {
        await prisma.apiKey.update({ where: { id: row.id }, data: { lastUsedAt: new Date() } });
      }
      return row.clientId;
    },

    deleteAll: (clientId: string) => prisma.apiKey.deleteMany({ where: { clientId } }),
  };
}

export type ApiKeysService = ReturnType<typeof createApiKeysService>;
