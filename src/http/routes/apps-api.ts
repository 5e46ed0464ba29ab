import type { Middleware } from 'koa';
import { z } from 'zod';
import type { Principal } from '../../auth/principal.js';
import { AppInput, AppPatch, type Apps } from '../../clients/apps.service.js';
import { AppUserQuery } from '../../clients/clients.service.js';
import type { ApiRegistry } from '../api-routes.js';
import { ApiKeyOut, AppOut, page } from '../api-schemas.js';
import { requestMeta } from '../request-meta.js';

const AppUserOut = z
  .object({
    id: z.string(),
    email: z.string().nullable().meta({ description: "null unless the user granted the app the email scope (admins see every user's)" }),
    name: z.string().nullable().meta({ description: 'null unless the user granted the app the profile scope (admins see every user\'s)' }),
    username: z.string().nullable().meta({ description: 'as name' }),
    lastLoginAt: z.iso.datetime().nullable(),
  })
  .meta({ id: 'AppUser' });

const principal = (ctx: { state: Record<string, unknown> }) => ctx.state.principal as Principal;

/** /api/apps: OIDC clients owned by developers (admins see all); API keys act for one app. */
export function defineAppsApi(api: ApiRegistry, deps: { apps: Apps; guard: Middleware[]; mayCreate: Middleware }) {
  const common = { tag: 'Apps', auth: 'bearer' as const, use: deps.guard };
  const { apps } = deps;
  // The app is found and the caller's access checked before the body is validated.
  const access = (action: 'read' | 'update' | 'revoke' | 'delete'): { use: Middleware[] } => ({
    use: [
      ...deps.guard,
      async (ctx, next) => {
        await apps.authorize(principal(ctx), ctx.params.id!, action);
        await next();
      },
    ],
  });
  const one = { 200: { description: 'The app', schema: AppOut } };

  api.define({ ...common, method: 'get', path: '/api/apps', summary: "The caller's apps (admins: all)", responses: { 200: { description: 'Apps', schema: z.object({ items: z.array(AppOut) }) } } }, async (ctx) => {
    ctx.body = { items: await apps.list(principal(ctx)) };
  });

  api.define(
    { ...common, use: [...deps.guard, deps.mayCreate], method: 'post', path: '/api/apps', summary: 'Create an app; a confidential app\'s secret is shown once', body: AppInput, responses: { 409: { description: 'The owner already has an app of this name' }, 201: { description: 'Created', schema: AppOut.extend({ clientSecret: z.string().optional() }) } } },
    async (ctx, { body }) => {
      const { client, clientSecret } = await apps.create(principal(ctx), body, requestMeta(ctx));
      ctx.status = 201;
      ctx.body = { ...client, ...(clientSecret ? { clientSecret } : {}) };
    },
  );

  api.define({ ...common, method: 'get', path: '/api/apps/:id', summary: 'One app', responses: one }, async (ctx, { params }) => {
    ctx.body = await apps.authorize(principal(ctx), params.id!, 'read');
  });

  api.define({ ...common, ...access('update'), method: 'patch', path: '/api/apps/:id', summary: 'Edit an app', body: AppPatch, responses: { ...one, 409: { description: 'The owner already has an app of this name' } } }, async (ctx, { params, body }) => {
    ctx.body = await apps.update(principal(ctx), params.id!, body, requestMeta(ctx));
  });

  api.define({ ...common, ...access('delete'), method: 'delete', path: '/api/apps/:id', summary: 'Delete an app with all its grants and tokens', responses: { 204: { description: 'Deleted' } } }, async (ctx, { params }) => {
    await apps.delete(principal(ctx), params.id!, requestMeta(ctx));
    ctx.status = 204;
  });

  api.define(
    { ...common, method: 'post', path: '/api/apps/:id/secret', summary: 'Rotate the client secret (the old one stops working at once)', responses: { 200: { description: 'The new secret, shown once', schema: z.object({ clientSecret: z.string() }) } } },
    async (ctx, { params }) => {
      ctx.set('cache-control', 'no-store');
      ctx.body = { clientSecret: await apps.rotateSecret(principal(ctx), params.id!, requestMeta(ctx)) };
    },
  );

  api.define(
    { ...common, method: 'post', path: '/api/apps/:id/revoke', summary: "Revoke every grant and token of the app's users", responses: { 200: { description: 'How many were revoked', schema: z.object({ revoked: z.number().int() }) } } },
    async (ctx, { params }) => {
      ctx.body = { revoked: await apps.revokeAll(principal(ctx), params.id!, requestMeta(ctx)) };
    },
  );

  api.define({ ...common, method: 'get', path: '/api/apps/:id/api-keys', summary: 'The app\'s API keys (never the keys themselves)', responses: { 200: { description: 'Keys', schema: z.object({ items: z.array(ApiKeyOut) }) } } }, async (ctx, { params }) => {
    ctx.body = { items: await apps.listApiKeys(principal(ctx), params.id!) };
  });

  api.define(
    { ...common, method: 'post', path: '/api/apps/:id/api-keys', summary: 'Create an API key, deactivating the earlier ones; the key is shown once', responses: { 201: { description: 'The new key', schema: ApiKeyOut.pick({ id: true, prefix: true, createdAt: true }).extend({ key: z.string() }) } } },
    async (ctx, { params }) => {
      ctx.set('cache-control', 'no-store');
      ctx.status = 201;
      ctx.body = await apps.createApiKey(principal(ctx), params.id!, requestMeta(ctx));
    },
  );

  api.define(
    {
      ...common,
      // A stranger's malformed page gets the 404, not a 400.
      ...access('read'),
      method: 'get',
      path: '/api/apps/:id/users',
      summary: 'Users who granted the app access, with their last sign-in, and their email, name and username as far as they consented to share them; oldest account first, paged',
      query: AppUserQuery,
      responses: { 200: { description: 'A page of users', schema: page(AppUserOut, 'AppUserPage') } },
    },
    async (ctx, { params, query }) => {
      ctx.body = await apps.users(principal(ctx), params.id!, query);
    },
  );
}
