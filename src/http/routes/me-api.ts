import type { Context, Middleware } from 'koa';
import { z } from 'zod';
import type { AccountFlows } from '../../accounts/account-flows.js';
import type { Audit } from '../../audit/audit.service.js';
import type { Principal } from '../../auth/principal.js';
import type { FederatedAccounts } from '../../federation/federated-accounts.js';
import { PageQuery } from '../../db/paged-ids.js';
import { ProfileUpdate } from '../../users/users.service.js';
import { toUserDto } from '../../users/users.dto.js';
import type { ApiRegistry } from '../api-routes.js';
import { ActivityOut, IdentitiesOut, MeOut, MessageOut } from '../api-schemas.js';
import { requestMeta } from '../request-meta.js';

const ChangePassword = z.object({ currentPassword: z.string().min(1).max(1024), newPassword: z.string().min(1).max(1024) });
// Not part of the profile: the proof a new email address asks for.
const CurrentPassword = z.string().min(1).max(1024).optional().meta({ description: 'Required to change the email address (unless the account has no password)' });
const ProfileEdit = ProfileUpdate.extend({ currentPassword: CurrentPassword });
const DeleteAccount = z.object({
  currentPassword: z.string().min(1).max(1024).optional().meta({ description: 'Required (an account without a password is deleted on /account, within ten minutes of signing in)' }),
});
// PUT replaces the editable profile: omitted name fields are cleared.
const ProfileReplace = ProfileUpdate.required({ email: true }).extend({
  username: ProfileUpdate.shape.username.default(null),
  givenName: ProfileUpdate.shape.givenName.default(null),
  familyName: ProfileUpdate.shape.familyName.default(null),
  name: ProfileUpdate.shape.name.default(null),
  currentPassword: CurrentPassword,
});

export const toActivityDto = (e: { event: string; ip: string | null; userAgent: string | null; createdAt: Date }) => ({
  event: e.event,
  at: e.createdAt,
  ip: e.ip,
  userAgent: e.userAgent,
});

type UserPrincipal = Extract<Principal, { kind: 'user' }>;
const me = (ctx: { state: Record<string, unknown> }) => ctx.state.principal as UserPrincipal;

/** /api/me: the signed-in user's own account, with a first-party bearer token. */
export function defineMeApi(api: ApiRegistry, deps: { accounts: AccountFlows; audit: Audit; federated: FederatedAccounts; requireUser: Middleware }) {
  const common = { tag: 'Me', auth: 'bearer' as const, use: [deps.requireUser] };
  const user = { 200: { description: 'The user, and the address it moves to once confirmed', schema: MeOut } };
  // An edit may ask for an address or username another account holds, or get a wrong current password once too often.
  const edited = { ...user, 409: { description: 'The email address or username is taken' }, 429: { description: 'Too many attempts or requests; see Retry-After' } };

  api.define({ ...common, method: 'get', path: '/api/me', summary: 'The signed-in user', responses: user }, async (ctx) => {
    const { user: self } = me(ctx);
    ctx.body = { ...toUserDto(self), pendingEmail: (await deps.accounts.pendingEmail(self.id)) ?? null };
  });

  const editProfile = async (ctx: Context, { currentPassword, ...profile }: ProfileUpdate & { currentPassword?: string }) => {
    const edited = await deps.accounts.updateProfile(me(ctx).user, profile, requestMeta(ctx), { currentPassword });
    ctx.body = { ...toUserDto(edited.user), pendingEmail: edited.pendingEmail ?? (await deps.accounts.pendingEmail(edited.user.id)) ?? null };
  };
  api.define(
    { ...common, method: 'patch', path: '/api/me', summary: 'Edit the profile (a new email takes the current password, and the account moves to it when the link mailed there is followed)', body: ProfileEdit, responses: edited },
    (ctx, { body }) => editProfile(ctx, body),
  );
  api.define({ ...common, method: 'put', path: '/api/me', summary: 'Replace the profile', body: ProfileReplace, responses: edited }, (ctx, { body }) => editProfile(ctx, body));

  api.define(
    {
      ...common,
      method: 'delete',
      path: '/api/me',
      summary: 'Delete the account and end its sessions (takes the current password)',
      body: DeleteAccount,
      responses: {
        204: { description: 'Deleted' },
        403: { description: 'Not allowed; RECENT_SIGN_IN_REQUIRED for an account without a password (delete it on /account)' },
        409: { description: 'LAST_ADMIN: the last active admin' },
        429: { description: 'Too many wrong passwords: the account\'s sign-in limit' },
      },
    },
    async (ctx, { body }) => {
      await deps.accounts.deleteAccount(me(ctx).user, requestMeta(ctx), { currentPassword: body.currentPassword });
      ctx.status = 204;
    },
  );

  api.define(
    { ...common, method: 'post', path: '/api/me/password', summary: 'Change the password; other sessions and refresh tokens are revoked', body: ChangePassword, responses: { 204: { description: 'Changed' }, 429: { description: 'Too many attempts or requests; see Retry-After' } } },
    async (ctx, { body }) => {
      const { user, grantId } = me(ctx);
      await deps.accounts.changePassword(user, body.currentPassword, body.newPassword, requestMeta(ctx), { grantId });
      ctx.status = 204;
    },
  );

  api.define(
    { ...common, method: 'post', path: '/api/me/verification', summary: 'Email the confirmation link again', responses: { 202: { description: 'Sent (or already confirmed)', schema: MessageOut }, 429: { description: 'Too many attempts or requests; see Retry-After' } } },
    async (ctx) => {
      const { user } = me(ctx);
      if (!user.emailVerified) await deps.accounts.sendVerification(user, requestMeta(ctx));
      ctx.status = 202;
      ctx.body = { message: user.emailVerified ? 'This address is already confirmed.' : `We sent a confirmation link to ${user.email}.` };
    },
  );

  api.define(
    { ...common, method: 'get', path: '/api/me/activity', summary: 'Security activity, newest first', query: PageQuery, responses: { 200: { description: 'A page of events', schema: ActivityOut } } },
    async (ctx, { query }) => {
      const found = await deps.audit.activityOf(me(ctx).user.id, query);
      ctx.body = { ...found, items: found.items.map(toActivityDto) };
    },
  );

  api.define(
    { ...common, method: 'get', path: '/api/me/identities', summary: 'Accounts at other providers linked to this one', responses: { 200: { description: 'Oldest first', schema: IdentitiesOut } } },
    async (ctx) => {
      ctx.body = { items: await deps.federated.listForUser(me(ctx).user.id) };
    },
  );

  api.define(
    {
      ...common,
      method: 'delete',
      path: '/api/me/identities/:id',
      summary: 'Remove a linked account (refused with 409 LAST_SIGN_IN_METHOD when it is the only way to sign in)',
      responses: { 204: { description: 'Removed' }, 404: { description: 'No such linked account' }, 409: { description: 'The last way to sign in' } },
    },
    async (ctx, { params }) => {
      await deps.federated.unlink(me(ctx).user, params.id ?? '', requestMeta(ctx));
      ctx.status = 204;
    },
  );
}
