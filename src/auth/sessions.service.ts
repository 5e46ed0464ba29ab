import type { Db } from '../db/prisma.js';
import type { Audit, RequestMeta } from '../audit/audit.service.js';

type SessionPayload = { uid?: string; loginTs?: number; authorizations?: Record<string, { grantId?: string; persistsLogout?: boolean }> };
type GrantPayload = { clientId?: string; openid?: { scope?: string }; resources?: Record<string, string>; iat?: number };

/** Browser sessions and grants (consents) as stored by the provider, for admins and the account page. */
export function createSessionsService(prisma: Db, audit: Audit) {
  const live = { OR: [{ expiresAt: null }, { expiresAt: { gt: new Date() } }] };

  return {
    async listSessions(filter: { userId?: string; clientId?: string } = {}, take = 100) {
      const rows = await prisma.oidcPayload.findMany({
        where: { model: 'Session', ...(filter.userId ? { accountId: filter.userId } : { accountId: { not: null } }), ...live },
        orderBy: { expiresAt: 'desc' },
        // Which clients a session signed in to lives in its payload: filter those after reading.
        take: filter.clientId ? take * 10 : take,
      });
      const sessions = rows.map((r) => {
        const p = r.payload as SessionPayload;
        return {
          id: r.id,
          uid: r.uid,
          userId: r.accountId,
          signedInAt: p.loginTs ? new Date(p.loginTs * 1000) : null,
          expiresAt: r.expiresAt,
          clients: Object.keys(p.authorizations ?? {}),
        };
      });
      return (filter.clientId ? sessions.filter((s) => s.clients.includes(filter.clientId!)) : sessions).slice(0, take);
    },

    async listGrants(filter: { userId?: string; clientId?: string }, take = 100) {
      const rows = await prisma.oidcPayload.findMany({
        where: { model: 'Grant', ...(filter.userId ? { accountId: filter.userId } : {}), ...(filter.clientId ? { clientId: filter.clientId } : {}), ...live },
        take,
      });
      return rows.map((r) => {
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
