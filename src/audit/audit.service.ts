import type { Logger } from 'pino';
import { v7 as timeOrderedId } from 'uuid';
import type { Db } from '../db/prisma.js';
import type { OidcStore } from '../db/oidc-store.js';
import { findThenDelete, purgeInBatches } from '../db/purge.js';

export const AUDIT_EVENTS = [
  'login.success',
  'login.failure',
  'logout',
  'registration',
  'email.verification_sent',
  'email.verified',
  'email.change_requested',
  'email.changed',
  'password.changed',
  'password.reset_requested',
  'password.reset',
  'magic_link.sent',
  'magic_link.used',
  'account.updated',
  'account.deleted',
  'federated.linked',
  'federated.unlinked',
  'federated.failure',
  'admin.user_created',
  'admin.user_updated',
  'admin.user_deleted',
  'admin.app_created',
  'admin.app_updated',
  'admin.app_deleted',
  'admin.app_secret_rotated',
  'admin.app_revoked',
  'admin.api_key_created',
  'admin.settings_updated',
  'admin.session_revoked',
  'admin.grant_revoked',
  'admin.reset_link_sent',
  'admin.connection_created',
  'admin.connection_updated',
  'admin.connection_deleted',
  'admin.api_resource_created',
  'admin.signing_keys_rotated',
] as const;
export type AuditEventName = (typeof AUDIT_EVENTS)[number];

/** Who did it and from where: the HTTP layer fills this from the request. */
export type RequestMeta = { ip?: string; userAgent?: string };

/** Events are written through the hot path store (every sign-in writes one); read through Prisma. */
export function createAudit(prisma: Db, store: Pick<OidcStore, 'insertAuditEvent'>, logger: Logger) {
  /** The audit log for admins: filters by user, event and time, newest first, paged by cursor-free offsets. */
  async function search(filter: { userId?: string; event?: string; from?: Date; to?: Date; page?: number; pageSize?: number }) {
    const pageSize = Math.min(filter.pageSize ?? 50, 200);
    const page = Math.max(filter.page ?? 1, 1);
    const where = {
      ...(filter.userId ? { userId: filter.userId } : {}),
      ...(filter.event ? { event: filter.event } : {}),
      ...(filter.from || filter.to ? { createdAt: { ...(filter.from ? { gte: filter.from } : {}), ...(filter.to ? { lte: filter.to } : {}) } } : {}),
    };
    const [total, items] = await Promise.all([
      prisma.auditEvent.count({ where }),
      prisma.auditEvent.findMany({ where, orderBy: [{ createdAt: 'desc' }, { id: 'desc' }], skip: (page - 1) * pageSize, take: pageSize }),
    ]);
    return { items, total, page, pageSize };
  }

  return {
    /** Records an event; an audit failure is logged, never turned into a failed login. */
    async record(event: AuditEventName, input: { userId?: string | null; actorId?: string | null; detail?: object } & RequestMeta) {
      logger.info({ event, userId: input.userId, ip: input.ip }, 'audit');
      try {
        await store.insertAuditEvent({
          // Time-ordered ids break ties between events written in the same millisecond, so a
          // logout right after a login still lists after it.
          id: timeOrderedId(),
          event,
          userId: input.userId ?? null,
          actorId: input.actorId ?? input.userId ?? null,
          ip: input.ip ?? null,
          userAgent: input.userAgent?.slice(0, 500) ?? null,
          detail: input.detail ?? null,
          createdAt: new Date(),
        });
      } catch (err) {
        logger.error({ err, event }, 'could not write audit event');
      }
    },

    /** Deletes events older than `before` (AUDIT_RETENTION_DAYS), in small paced batches; returns how many. */
    purgeOlderThan: (before: Date, signal?: AbortSignal) =>
      purgeInBatches(
        findThenDelete(
          async (take) => (await prisma.auditEvent.findMany({ where: { createdAt: { lt: before } }, select: { id: true }, take })).map((e) => e.id),
          (ids) => prisma.auditEvent.deleteMany({ where: { id: { in: ids } } }),
        ),
        { signal },
      ),

    search,

    /**
     * A user's own security activity, newest first, a page at a time. Where someone else (an admin,
     * staff) acted on the account, the user sees what was done and when, not that person's IP
     * address or browser.
     */
    async activityOf(userId: string, paging: { page?: number; pageSize?: number } = {}) {
      const found = await search({ userId, ...paging });
      return { ...found, items: found.items.map((e) => (e.actorId && e.actorId !== userId ? { ...e, ip: null, userAgent: null } : e)) };
    },
  };
}

export type Audit = ReturnType<typeof createAudit>;
