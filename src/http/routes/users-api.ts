import type { Middleware } from 'koa';
import type { Principal } from '../../auth/principal.js';
import { AdminNewUser, AdminUserPatch, AdminUserReplace, UserQuery, type UsersAdmin } from '../../users/users-admin.service.js';
import { toUserDto } from '../../users/users.dto.js';
import type { ApiRegistry } from '../api-routes.js';
import { UserOut, page } from '../api-schemas.js';
import { requestMeta } from '../request-meta.js';

const principal = (ctx: { state: Record<string, unknown> }) => ctx.state.principal as Principal;

/** /api/users: user administration for admins and staff (rules in users-admin.service). */
export function defineUsersApi(api: ApiRegistry, deps: { usersAdmin: UsersAdmin; guard: Middleware[] }) {
  const common = { tag: 'Users', auth: 'bearer' as const, use: deps.guard };
  const one = { 200: { description: 'The user', schema: UserOut } };
  const { usersAdmin } = deps;

  api.define(
    { ...common, method: 'get', path: '/api/users', summary: 'Search users (email, name, username), oldest first, paged', query: UserQuery, responses: { 200: { description: 'A page of users', schema: page(UserOut, 'UserPage') } } },
    async (ctx, { query }) => {
      const result = await usersAdmin.list(principal(ctx), query);
      ctx.body = { ...result, items: result.items.map(toUserDto) };
    },
  );

  api.define(
    { ...common, method: 'post', path: '/api/users', summary: 'Create a user (roles and active flag: admins only)', body: AdminNewUser, responses: { 201: { description: 'Created', schema: UserOut }, 409: { description: 'The email address or username is taken' } } },
    async (ctx, { body }) => {
      ctx.status = 201;
      ctx.body = toUserDto(await usersAdmin.create(principal(ctx), body, requestMeta(ctx)));
    },
  );

  api.define({ ...common, method: 'get', path: '/api/users/:id', summary: 'One user', responses: one }, async (ctx, { params }) => {
    ctx.body = toUserDto(await usersAdmin.get(principal(ctx), params.id!));
  });

  api.define(
    { ...common, method: 'patch', path: '/api/users/:id', summary: 'Edit a user; disabling ends their sessions at once', body: AdminUserPatch, responses: { ...one, 409: { description: 'The email address or username is taken, or the change would leave no active admin' } } },
    async (ctx, { params }) => {
      ctx.body = toUserDto(await usersAdmin.update(principal(ctx), params.id!, ctx.request.body, false, requestMeta(ctx)));
    },
  );

  api.define(
    { ...common, method: 'put', path: '/api/users/:id', summary: 'Replace a user\'s profile (omitted names are cleared; roles kept unless given)', body: AdminUserReplace, responses: { ...one, 409: { description: 'The email address or username is taken, or the change would leave no active admin' } } },
    async (ctx, { params }) => {
      ctx.body = toUserDto(await usersAdmin.update(principal(ctx), params.id!, ctx.request.body, true, requestMeta(ctx)));
    },
  );

  api.define(
    { ...common, method: 'delete', path: '/api/users/:id', summary: 'Delete a user and revoke everything they hold (admins)', responses: { 204: { description: 'Deleted' }, 409: { description: 'The last active admin' } } },
    async (ctx, { params }) => {
      await usersAdmin.delete(principal(ctx), params.id!, requestMeta(ctx));
      ctx.status = 204;
    },
  );
}
