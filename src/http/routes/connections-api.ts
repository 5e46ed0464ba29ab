import type { Middleware } from 'koa';
import { z } from 'zod';
import type { Audit } from '../../audit/audit.service.js';
import { actorId, type Principal } from '../../auth/principal.js';
import type { AppConnections } from '../../federation/app-connections.js';
import { connectionChanges } from '../../federation/connection-changes.js';
import { ConnectionInput, ConnectionPatch, toConnectionDto } from '../../federation/connection-settings.js';
import type { ConnectionsService } from '../../federation/connections.service.js';
import type { ApiRegistry } from '../api-routes.js';
import { ConnectionOut } from '../api-schemas.js';
import { requestMeta } from '../request-meta.js';

const principal = (ctx: { state: Record<string, unknown> }) => ctx.state.principal as Principal;

/** /api/connections: global upstream login providers (admins). */
export function defineConnectionsApi(api: ApiRegistry, deps: { connections: ConnectionsService; audit: Audit; publicUrl: string; guard: Middleware[] }) {
  const { connections, audit, publicUrl } = deps;
  const common = { tag: 'Connections', auth: 'bearer' as const, use: deps.guard };
  const one = { 200: { description: 'The connection', schema: ConnectionOut } };

  api.define({ ...common, method: 'get', path: '/api/connections', summary: 'Global upstream login providers', responses: { 200: { description: 'Connections', schema: z.object({ items: z.array(ConnectionOut) }) } } }, async (ctx) => {
    ctx.body = { items: (await connections.list({ ownerClientId: null })).map((c) => toConnectionDto(c, publicUrl)) };
  });

  api.define(
    { ...common, method: 'post', path: '/api/connections', summary: 'Add a global upstream login provider; apps choose to offer it', body: ConnectionInput, responses: { 201: { description: 'Created', schema: ConnectionOut }, 409: { description: 'The slug is taken, or the server has no key to store a client secret with' } } },
    async (ctx, { body }) => {
      const created = await connections.create(body);
      await audit.record('admin.connection_created', { actorId: actorId(principal(ctx)), detail: { connectionId: created.id, slug: created.slug }, ...requestMeta(ctx) });
      ctx.status = 201;
      ctx.body = toConnectionDto(created, publicUrl);
    },
  );

  api.define({ ...common, method: 'get', path: '/api/connections/:id', summary: 'One connection (global or an app\'s)', responses: one }, async (ctx, { params }) => {
    ctx.body = toConnectionDto(await connections.find(params.id!), publicUrl);
  });

  api.define({ ...common, method: 'patch', path: '/api/connections/:id', summary: 'Edit a connection; kind and slug stay', body: ConnectionPatch, responses: one }, async (ctx, { params, body }) => {
    const before = await connections.find(params.id!);
    const updated = await connections.update(before.id, body);
    const detail = { connectionId: updated.id, fields: Object.keys(body), changes: connectionChanges(before, updated) };
    await audit.record('admin.connection_updated', { actorId: actorId(principal(ctx)), detail, ...requestMeta(ctx) });
    ctx.body = toConnectionDto(updated, publicUrl);
  });

  api.define({ ...common, method: 'delete', path: '/api/connections/:id', summary: 'Delete a connection; its users keep their local accounts', responses: { 204: { description: 'Deleted' } } }, async (ctx, { params }) => {
    const c = await connections.find(params.id!);
    await connections.delete(c.id);
    await audit.record('admin.connection_deleted', { actorId: actorId(principal(ctx)), detail: { connectionId: c.id, slug: c.slug }, ...requestMeta(ctx) });
    ctx.status = 204;
  });
}

/** /api/apps/:id/connections: an app's own upstream providers, and which ones its login page offers. */
export function defineAppConnectionsApi(api: ApiRegistry, deps: { appConnections: AppConnections; guard: Middleware[] }) {
  const { appConnections } = deps;
  const common = { tag: 'Apps', auth: 'bearer' as const, use: deps.guard };
  const Out = ConnectionOut.extend({ offered: z.boolean() });

  api.define(
    { ...common, method: 'get', path: '/api/apps/:id/connections', summary: "The app's own and the global connections, and whether its login page offers each", responses: { 200: { description: 'Connections', schema: z.object({ items: z.array(Out) }) } } },
    async (ctx, { params }) => {
      ctx.body = { items: await appConnections.list(principal(ctx), params.id!) };
    },
  );

  api.define(
    { ...common, method: 'post', path: '/api/apps/:id/connections', summary: "Add an upstream provider of the app's own, offered on its login page", body: ConnectionInput, responses: { 201: { description: 'Created', schema: Out } } },
    async (ctx, { params, body }) => {
      ctx.status = 201;
      ctx.body = await appConnections.create(principal(ctx), params.id!, body, requestMeta(ctx));
    },
  );

  api.define(
    { ...common, method: 'patch', path: '/api/apps/:id/connections/:connectionId', summary: "Edit one of the app's own connections", body: ConnectionPatch, responses: { 200: { description: 'The connection', schema: Out } } },
    async (ctx, { params, body }) => {
      ctx.body = await appConnections.update(principal(ctx), params.id!, params.connectionId!, body, requestMeta(ctx));
    },
  );

  api.define(
    { ...common, method: 'put', path: '/api/apps/:id/connections/:connectionId', summary: 'Offer a connection (global, or the app\'s own) on the app\'s login page', responses: { 200: { description: 'Offered', schema: Out } } },
    async (ctx, { params }) => {
      ctx.body = await appConnections.offer(principal(ctx), params.id!, params.connectionId!, requestMeta(ctx));
    },
  );

  api.define(
    { ...common, method: 'delete', path: '/api/apps/:id/connections/:connectionId', summary: "Stop offering a connection; the app's own connection is deleted", responses: { 204: { description: 'Done' } } },
    async (ctx, { params }) => {
      await appConnections.withdraw(principal(ctx), params.id!, params.connectionId!, requestMeta(ctx));
      ctx.status = 204;
    },
  );
}
