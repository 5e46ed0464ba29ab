import type { Context } from 'koa';
import type Provider from 'oidc-provider';
import { z } from 'zod';
import type { AccountFlows } from '../../accounts/account-flows.js';
import type { Audit } from '../../audit/audit.service.js';
import { API_CLIENT_ID, MAGIC_LINK_GRANT, PASSWORD_GRANT } from '../../oidc/first-party-clients.js';
import { EMAIL_NOT_VERIFIED } from '../../oidc/first-party-grants.js';
import type { TokenBridge } from '../../oidc/token-bridge.js';
import type { SettingsService } from '../../settings/settings.service.js';
import { toUserDto } from '../../users/users.dto.js';
import { NewUser } from '../../users/users.service.js';
import type { ApiRegistry } from '../api-routes.js';
import { MessageOut, TokensOut, UserOut } from '../api-schemas.js';
import { AppError, serviceUnavailable } from '../problem.js';
import { answered, requestMeta } from '../request-meta.js';

const Email = z.object({ email: z.email().max(254) });
const Token = z.object({ token: z.string().min(1).max(200) });
const Scope = z.string().max(200).optional().meta({ description: 'Space-separated; default "openid profile email"' });
const Login = z
  .object({ username: z.string().min(1).max(320).optional(), email: z.string().min(1).max(320).optional(), password: z.string().min(1).max(1024), scope: Scope })
  .refine((b) => b.username || b.email, { message: 'username or email is required', path: ['username'] });
// The account's fields as registration checks them, so the document shows the same rules; the
// password's strength is judged by the policy, which answers WEAK_PASSWORD with its reason.
const Register = NewUser.pick({ email: true, username: true, name: true, givenName: true, familyName: true }).extend({ password: z.string().min(1).max(1024) });
const Refresh = z.object({ refresh_token: z.string().min(1).max(2000), scope: Scope });
const ResetPassword = z.object({ token: z.string().min(1).max(200), password: z.string().min(1).max(1024) });

/** Maps the provider's OAuth error for a first-party call to our problem format. */
function fromOAuthError(status: number, body: Record<string, unknown>, invalidGrant: AppError): AppError {
  // The provider could not answer (its database, say): the caller's request was not at fault.
  if (status === 503) return serviceUnavailable();
  if (status >= 500) return new AppError('INTERNAL');
  if (status === 429) return new AppError('TOO_MANY_ATTEMPTS');
  if (body.error === 'invalid_grant') {
    return body.error_description === EMAIL_NOT_VERIFIED ? new AppError('EMAIL_NOT_VERIFIED') : invalidGrant;
  }
  return new AppError('VALIDATION_FAILED', String(body.error_description ?? body.error ?? 'invalid request'));
}

/** /api/auth/*: JSON (or form) in, tokens minted by the provider for the latch-api client out. */
export function defineAuthApi(api: ApiRegistry, deps: { accounts: AccountFlows; audit: Audit; provider: Provider; callProvider: TokenBridge; settings: SettingsService }) {
  const { accounts, callProvider } = deps;
  const tag = 'Authentication';
  const tokensResponse = { 200: { description: 'Tokens minted by the OpenID provider', schema: TokensOut } };

  async function tokens(ctx: Context, params: Record<string, string>, invalidGrant: AppError) {
    const { status, body } = await callProvider(ctx, '/o/token', { client_id: API_CLIENT_ID, ...params });
    if (status >= 400) throw fromOAuthError(status, body, invalidGrant);
    ctx.set('cache-control', 'no-store');
    ctx.status = 200;
    ctx.body = body;
  }

  api.define(
    { method: 'post', path: '/api/auth/register', tag, auth: 'none', summary: 'Create an account; a confirmation link is emailed', body: Register, responses: { 403: { description: 'Registration is closed' }, 409: { description: 'The email address or username is taken' }, 429: { description: 'Too many attempts or requests; see Retry-After' }, 201: { description: 'Created', schema: z.object({ user: UserOut, verificationEmailSent: z.boolean() }) } } },
    async (ctx, { body }) => {
      if (!deps.settings.snapshot().registrationOpen) throw new AppError('REGISTRATION_CLOSED');
      const user = await accounts.register(body, requestMeta(ctx));
      ctx.status = 201;
      ctx.body = { user: toUserDto(user), verificationEmailSent: true };
    },
  );

  api.define(
    { method: 'post', path: '/api/auth/login', tag, auth: 'none', form: true, summary: 'Sign in with a password (first-party apps)', body: Login, responses: { ...tokensResponse, 401: { description: 'Wrong login or password' }, 403: { description: 'The email address is not confirmed yet (when the settings require it)' }, 429: { description: 'Too many attempts or requests; see Retry-After' } } },
    async (ctx, { body }) => {
      const params = { grant_type: PASSWORD_GRANT, username: (body.username ?? body.email)!, password: body.password };
      await tokens(ctx, { ...params, ...(body.scope ? { scope: body.scope } : {}) }, new AppError('INVALID_CREDENTIALS'));
    },
  );

  api.define(
    { method: 'post', path: '/api/auth/refresh', tag, auth: 'none', summary: 'Rotate the token pair', body: Refresh, responses: tokensResponse },
    async (ctx, { body }) => {
      const invalid = new AppError('INVALID_TOKEN', 'The refresh token is invalid, expired or revoked.');
      await tokens(ctx, { grant_type: 'refresh_token', refresh_token: body.refresh_token, ...(body.scope ? { scope: body.scope } : {}) }, invalid);
    },
  );

  api.define(
    { method: 'post', path: '/api/auth/logout', tag, auth: 'none', summary: "Revoke the login's grant (all its tokens)", body: Refresh.pick({ refresh_token: true }), responses: { 204: { description: 'Revoked' } } },
    async (ctx, { body }) => {
      // Whose login it ends, for the user's activity (the revocation answers alike for any token).
      const live = await deps.provider.RefreshToken.find(body.refresh_token);
      // Another app's token is revoked only with that app's credentials: say so rather than answer
      // 204 for a login that goes on. An unknown or expired token has nothing left to end (204).
      if (live && live.clientId !== API_CLIENT_ID) {
        throw new AppError('INVALID_TOKEN', "This refresh token was issued to another app: revoke it at /o/token/revocation with that app's credentials.");
      }
      const userId = live?.clientId === API_CLIENT_ID && !live.isExpired ? live.accountId : undefined;
      // Revoking a refresh token revokes its whole grant: every access token of this login dies too.
      const { status, body: out } = await callProvider(ctx, '/o/token/revocation', { client_id: API_CLIENT_ID, token: body.refresh_token, token_type_hint: 'refresh_token' });
      if (status >= 400) throw fromOAuthError(status, out, new AppError('INVALID_TOKEN'));
      if (userId) await deps.audit.record('logout', { userId, ...requestMeta(ctx), detail: { via: 'api' } });
      ctx.status = 204;
    },
  );

  api.define(
    { method: 'post', path: '/api/auth/forgot-password', tag, auth: 'none', summary: 'Email a password-reset link (same answer for any address)', body: Email, responses: { 202: { description: 'Accepted', schema: MessageOut }, 429: { description: 'Too many attempts or requests; see Retry-After' } } },
    async (ctx, { body }) => {
      await accounts.requestPasswordReset(body.email, requestMeta(ctx), answered(ctx));
      ctx.status = 202;
      ctx.body = { message: 'If an account exists for this address, we sent it a link to reset the password.' };
    },
  );

  api.define(
    { method: 'post', path: '/api/auth/reset-password', tag, auth: 'none', summary: 'Set a new password with an emailed token; signs out everywhere', body: ResetPassword, responses: { 204: { description: 'Password changed' } } },
    async (ctx, { body }) => {
      await accounts.resetPassword(body.token, body.password, requestMeta(ctx));
      ctx.status = 204;
    },
  );

  api.define(
    { method: 'post', path: '/api/auth/magic-link', tag, auth: 'none', summary: 'Email a sign-in link (same answer for any address)', body: Email, responses: { 202: { description: 'Accepted', schema: MessageOut }, 429: { description: 'Too many attempts or requests; see Retry-After' } } },
    async (ctx, { body }) => {
      await accounts.requestMagicLink(body.email, requestMeta(ctx), answered(ctx));
      ctx.status = 202;
      ctx.body = { message: 'If an account exists for this address, we sent it a sign-in link.' };
    },
  );

  api.define(
    { method: 'post', path: '/api/auth/magic-link/verify', tag, auth: 'none', summary: 'Exchange an emailed sign-in token for tokens', body: Token.extend({ scope: Scope }), responses: tokensResponse },
    async (ctx, { body }) => {
      await tokens(ctx, { grant_type: MAGIC_LINK_GRANT, token: body.token, ...(body.scope ? { scope: body.scope } : {}) }, new AppError('INVALID_TOKEN'));
    },
  );

  api.define(
    { method: 'post', path: '/api/auth/verify-email', tag, auth: 'none', summary: 'Confirm an email address with an emailed token', body: Token, responses: { 204: { description: 'Confirmed' } } },
    async (ctx, { body }) => {
      await accounts.verifyEmail(body.token, requestMeta(ctx));
      ctx.status = 204;
    },
  );
}
