import { PageQuery, type Paging } from '../db/paged-ids.js';
import type { Db } from '../db/prisma.js';
import type { Audit, RequestMeta } from '../audit/audit.service.js';

type SessionPayload = { uid?: string; loginTs?: number; authorizations?: Record<string, { grantId?: string; persistsLogout?: boolean }> };
type GrantPayload = { clientId?: string; openid?: { scope?: string }; resources?: Record<string, string>; iat?: number };

// Sessions read at a time when filtering them by app.
const SCAN_BATCH = 500;

type SessionRow = { id: string; uid: string | null; accountId: string | null; expiresAt: Date | null; payload: unknown };
const toSession = (r: SessionRow) => {
  const p = r.payload as SessionPayload;
  return { id: r.id, uid: r.uid, userId: r.accountId, signedInAt: p.loginTs ? new Date(p.loginTs * 1000) : null, expiresAt: r.expiresAt, clients: Object.keys(p.authorizations ?? {}) };
};

/** Browser sessions and grants (consents) as stored by the provider, for admins and the account page. */
export function createSessionsService(prisma: Db, audit: Audit) {
  const live = () => ({ OR: [{ expiresAt: null }, { expiresAt: { gt: new Date() } }] });

  return {
    /**
     * A page of live browser sessions, newest-expiring first. Which apps a session signed in to is
     * in its payload: filtered by app, the sessions are read in batches and the matches paged.
     */
    async listSessions(filter: { userId?: string; clientId?: string } = {}, paging: Paging = {}) {
      const { page, pageSize } = PageQuery.parse(paging);
      const where = { model: 'Session', accountId: filter.userId ? filter.userId : { not: null }, ...live() };
      const orderBy = [{ expiresAt: 'desc' as const }, { id: 'asc' as const }];
      if (!filter.clientId) {
        const [total, rows] = await Promise.all([prisma.oidcPayload.count({ where }), prisma.oidcPayload.findMany({ where, orderBy, skip: (page - 1) * pageSize, take: pageSize })]);
        return { items: rows.map(toSession), total, page, pageSize };
      }
      const items: ReturnType<typeof toSession>[] = [];
      let total = 0;
      for (let skip = 0; ; skip += SCAN_BATCH) {
        const rows = await prisma.oidcPayload.findMany({ where, orderBy, skip, take: SCAN_BATCH });
        for (const session of rows.map(toSession)) {
          if (!session.clients.includes(filter.clientId)) continue;
          total += 1;
          if (total > (page - 1) * pageSize && items.length < pageSize) items.push(session);
        }
        if (rows.length < SCAN_BATCH) break;
      }
      return { items, total, page, pageSize };
    },

    /** A page of live grants (consents), newest-expiring first. */
    async listGrants(filter: { userId?: string; clientId?: string }, paging: Paging = {}) {
      const { page, pageSize } = PageQuery.parse(paging);
      const where = { model: 'Grant', ...(filter.userId ? { accountId: filter.userId } : {}), ...(filter.clientId ? { clientId: filter.clientId } : {}), ...live() };
      const [total, rows] = await Promise.all([
        prisma.oidcPayload.count({ where }),
        prisma.oidcPayload.findMany({ where, orderBy: [{ expiresAt: 'desc' }, { id: 'asc' }], skip: (page - 1) * pageSize, take: pageSize }),
      ]);
      const items = rows.map((r) => {
        const p = r.payload as GrantPayload;
        return {
          id: r.id,
          userId: r.accountId,
          clientId: r.clientId ?? p.clientId ?? null,
          scope: p.openid?.scope ?? '',
          resources: Object.keys(p.resources ?? {}),
          createdAt: p.iat ? new Date(p.iat * 1000) : null,
          expiresAt: r.expiresAt,
        };
      });
      return { items, total, page, pageSize };
    },

    /**
     * Ends one browser session, audited with the actor; false when there was no such session. As
     * signing out there does, it revokes the grants the session holds, with their tokens, except
     * those signed in with offline_access, which outlive the session by design.
     */
    async revokeSession(id: string, by: { actorId: string } & RequestMeta): Promise<boolean> {
      const row = await prisma.oidcPayload.findUnique({ where: { model_id: { model: 'Session', id } }, select: { accountId: true, payload: true } });
      if (!row) return false;
      const grantIds = Object.values((row.payload as SessionPayload).authorizations ?? {})
        .filter((a) => a.grantId && !a.persistsLogout)
        .map((a) => a.grantId!);
      await prisma.oidcPayload.deleteMany({ where: { OR: [{ model: 'Session', id }, ...(grantIds.length ? [{ model: 'Grant', id: { in: grantIds } }, { grantId: { in: grantIds } }] : [])] } });
      await audit.record('admin.session_revoked', { ...by, userId: row.accountId, detail: { sessionId: id } });
      return true;
    },

    /** Revokes one grant with every token issued under it, audited; false when there was none. */
    async revokeGrant(id: string, by: { actorId: string } & RequestMeta): Promise<boolean> {
      const row = await prisma.oidcPayload.findUnique({ where: { model_id: { model: 'Grant', id } }, select: { accountId: true, clientId: true } });
      if (!row) return false;
      await prisma.oidcPayload.deleteMany({ where: { OR: [{ model: 'Grant', id }, { grantId: id }] } });
      await audit.record('admin.grant_revoked', { ...by, userId: row.accountId, detail: { grantId: id, clientId: row.clientId } });
      return true;
    },
  };
}

export type SessionsService = ReturnType<typeof createSessionsService>;
