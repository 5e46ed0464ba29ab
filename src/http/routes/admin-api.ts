import type { Middleware } from 'koa';
import { z } from 'zod';
import type { Audit } from '../../audit/audit.service.js';
import { fieldChanges } from '../../audit/changes.js';
import { actorId, isAdmin, type Principal } from '../../auth/principal.js';
import type { SessionsService } from '../../auth/sessions.service.js';
import { PageQuery } from '../../db/paged-ids.js';
import { Settings, SettingsPatch, type SettingsService } from '../../settings/settings.service.js';
import type { ApiRegistry } from '../api-routes.js';
import { AuditEventOut, page } from '../api-schemas.js';
import { AppError } from '../problem.js';
import { requestMeta } from '../request-meta.js';

// PostgreSQL has no year 0 (1 BC): a filter from 0000 would fail the query.
const Instant = z.iso.datetime().refine((v) => !v.startsWith('0000'), 'Use a year from 0001 on');

const AuditQuery = PageQuery.extend({ userId: z.string().optional(), event: z.string().max(100).optional(), from: Instant.optional(), to: Instant.optional() });
const SessionQuery = PageQuery.extend({ userId: z.string().optional(), clientId: z.string().optional() });

function admin(ctx: { state: Record<string, unknown> }): Principal {
  const p = ctx.state.principal as Principal;
  if (!isAdmin(p)) throw new AppError('FORBIDDEN', 'Admins only.');
  return p;
}

/** Runtime settings, the audit log, and sessions and grants: admins only. */
export function defineAdminApi(api: ApiRegistry, deps: { settings: SettingsService; audit: Audit; sessions: SessionsService; guard: Middleware[] }) {
  const common = { auth: 'bearer' as const, use: deps.guard };

  api.define({ ...common, tag: 'Settings', method: 'get', path: '/api/settings', summary: 'Runtime settings', responses: { 200: { description: 'Settings', schema: Settings } } }, async (ctx) => {
    admin(ctx);
    ctx.body = await deps.settings.get();
  });

  api.define(
    { ...common, tag: 'Settings', method: 'patch', path: '/api/settings', summary: 'Change settings; they apply without a restart', body: SettingsPatch, responses: { 200: { description: 'Settings', schema: Settings } } },
    async (ctx, { body }) => {
      const actor = admin(ctx);
      const { before, after } = await deps.settings.change(body, actorId(actor));
      ctx.body = after;
      await deps.audit.record('admin.settings_updated', { actorId: actorId(actor), detail: { ...body, changes: fieldChanges(before, after) }, ...requestMeta(ctx) });
    },
  );

  api.define(
    { ...common, tag: 'Audit', method: 'get', path: '/api/audit', summary: 'The audit log, newest first; filter by user, event and time', query: AuditQuery, responses: { 200: { description: 'A page of events', schema: page(AuditEventOut, 'AuditPage') } } },
    async (ctx, { query }) => {
      admin(ctx);
      ctx.body = await deps.audit.search({ ...query, from: query.from ? new Date(query.from) : undefined, to: query.to ? new Date(query.to) : undefined });
    },
  );

  const SessionOut = z.object({ id: z.string(), userId: z.string().nullable(), signedInAt: z.iso.datetime().nullable(), expiresAt: z.iso.datetime().nullable(), clients: z.array(z.string()) });
  api.define(
    { ...common, tag: 'Sessions', method: 'get', path: '/api/sessions', summary: 'Active browser sessions, latest expiry first', query: SessionQuery, responses: { 200: { description: 'A page of sessions', schema: page(SessionOut, 'SessionPage') } } },
    async (ctx, { query }) => {
      admin(ctx);
      const { userId, clientId, ...paging } = query;
      const found = await deps.sessions.listSessions({ userId, clientId }, paging);
      ctx.body = { ...found, items: found.items.map(({ uid: _uid, ...s }) => s) };
    },
  );

  api.define({ ...common, tag: 'Sessions', method: 'delete', path: '/api/sessions/:id', summary: 'End a browser session', responses: { 204: { description: 'Ended' } } }, async (ctx, { params }) => {
    const actor = admin(ctx);
    if (!(await deps.sessions.revokeSession(params.id!, { actorId: actorId(actor), ...requestMeta(ctx) }))) throw new AppError('NOT_FOUND');
    ctx.status = 204;
  });

  const GrantOut = z.object({ id: z.string(), userId: z.string().nullable(), clientId: z.string().nullable(), scope: z.string(), resources: z.array(z.string()), createdAt: z.iso.datetime().nullable(), expiresAt: z.iso.datetime().nullable() });
  api.define(
    { ...common, tag: 'Sessions', method: 'get', path: '/api/grants', summary: "Users' grants (consents) to apps, latest expiry first", query: SessionQuery, responses: { 200: { description: 'A page of grants', schema: page(GrantOut, 'GrantPage') } } },
    async (ctx, { query }) => {
      admin(ctx);
      const { userId, clientId, ...paging } = query;
      ctx.body = await deps.sessions.listGrants({ userId, clientId }, paging);
    },
  );

  api.define({ ...common, tag: 'Sessions', method: 'delete', path: '/api/grants/:id', summary: 'Revoke a grant and every token issued under it', responses: { 204: { description: 'Revoked' } } }, async (ctx, { params }) => {
    const actor = admin(ctx);
    if (!(await deps.sessions.revokeGrant(params.id!, { actorId: actorId(actor), ...requestMeta(ctx) }))) throw new AppError('NOT_FOUND');
    ctx.status = 204;
  });
}
