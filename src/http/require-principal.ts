import type { Middleware } from 'koa';
import type { AdapterPayload } from 'oidc-provider';
import type Provider from 'oidc-provider';
import type { ApiKeysService } from '../clients/api-keys.service.js';
import { mayHoldPrivileges } from '../clients/apps.service.js';
import { ADMIN_SCOPE } from '../clients/clients.service.js';
import { findWithGrant } from '../oidc/adapter.js';
import type { Principal } from '../auth/principal.js';
import type { UsersService } from '../users/users.service.js';
import { AppError } from './problem.js';

type Deps = { provider: Provider; users: UsersService; apiKeys: ApiKeysService };

function unauthenticated(ctx: Parameters<Middleware>[0]): never {
  ctx.set('www-authenticate', 'Bearer realm="latch"');
  throw new AppError('UNAUTHENTICATED');
}

/**
 * Whether a token is bound to a key its holder must prove (DPoP, RFC 9449; or a TLS client
 * certificate, RFC 8705). /api does not check such proofs, so it refuses these tokens rather than
 * take them as bearer tokens, which would make a stolen one as good as the proof it lacks (RFC 9449
 * section 7.1).
 */
const senderConstrained = (token: { jkt?: unknown; 'x5t#S256'?: unknown }) => Boolean(token.jkt || token['x5t#S256']);

/**
 * Whether a token that ends with its browser session (signed in without offline_access) still has
 * it: the session is live, of the same account, and holds the token's grant for its client. The
 * provider checks the same before introspection and userinfo answer, so a session ended by an
 * admin or by signing out ends these tokens at /api too.
 */
async function sessionHolds(provider: Provider, token: AdapterPayload, read: AdapterPayload | null | undefined) {
  const session = read === undefined ? await provider.Session.findByUid(String(token.sessionUid)) : read;
  const authorizations = session?.authorizations as Record<string, { grantId?: string }> | undefined;
  return Boolean(session && session.accountId === token.accountId && authorizations?.[token.clientId!]?.grantId === token.grantId);
}

/**
 * Resolves the bearer credential of a management call into a principal: an app API key, a user's
 * access token from a first-party (trusted) client, or a client-credentials token of a client an
 * admin registered with the latch:admin scope. Third-party apps' user tokens are refused (403).
 */
export async function resolvePrincipal(deps: Deps, authorization: string): Promise<Principal | 'forbidden' | 'sender-constrained' | undefined> {
  const value = /^Bearer\s+(\S+)$/i.exec(authorization)?.[1];
  if (!value) return undefined;

  const appId = await deps.apiKeys.verify(value);
  if (appId) return { kind: 'apiKey', clientId: appId };

  const { token, grant, session } = (await findWithGrant(deps.provider.AccessToken, value)) ?? {};
  if (token && senderConstrained(token)) return 'sender-constrained';
  if (token?.accountId && token.clientId) {
    // Live only with the grant it was issued under, as introspection and userinfo require: a grant
    // revoked on a replayed refresh token or code ends the tokens the winning request wrote after.
    if (!grant || grant.clientId !== token.clientId || grant.accountId !== token.accountId) return undefined;
    if (token.expiresWithSession && !(await sessionHolds(deps.provider, token, session))) return undefined;
    const client = await deps.provider.Client.find(token.clientId);
    if (!(client as { trusted?: boolean } | undefined)?.trusted) return 'forbidden';
    const user = await deps.users.findById(token.accountId);
    return user?.active ? { kind: 'user', user, clientId: token.clientId, grantId: token.grantId } : undefined;
  }

  const service = await deps.provider.ClientCredentials.find(value);
  if (service && senderConstrained(service)) return 'sender-constrained';
  if (service?.clientId) {
    const client = await deps.provider.Client.find(service.clientId);
    // The scope must be both granted in the token and registered on the client by an admin.
    const registered = (client?.scope ?? '').split(' ');
    if (!client || !registered.includes(ADMIN_SCOPE) || !(service.scope ?? '').split(' ').includes(ADMIN_SCOPE)) return 'forbidden';
    // And its owner, who holds its secret, must be an admin now (none for an app no user owns):
    // this covers tokens issued before the owner lost the role, and apps given the scope earlier.
    if (!mayHoldPrivileges(await deps.apiKeys.ownerRoles(service.clientId))) return 'forbidden';
    return { kind: 'service', clientId: service.clientId };
  }
  return undefined;
}

/** Puts the caller's principal on ctx.state.principal, or answers 401/403. */
export function requirePrincipal(deps: Deps, options: { usersOnly?: boolean } = {}): Middleware {
  return async (ctx, next) => {
    const principal = await resolvePrincipal(deps, ctx.get('authorization'));
    if (!principal) unauthenticated(ctx);
    if (principal === 'sender-constrained') {
      ctx.set('www-authenticate', 'Bearer realm="latch", error="invalid_token", error_description="sender-constrained tokens are not accepted here"');
      throw new AppError('UNAUTHENTICATED', 'This token is bound to a key (DPoP or a client certificate), and /api takes bearer tokens only: request one without DPoP.');
    }
    if (principal === 'forbidden') throw new AppError('FORBIDDEN', 'This token was issued to a third-party application, or lacks the latch:admin scope, or its app is owned by a user who is not an admin.');
    if (options.usersOnly && principal.kind !== 'user') throw new AppError('FORBIDDEN', 'This call needs a user token.');
    ctx.state.principal = principal;
    await next();
  };
}

/** Refuses principals without a role (403), before the request body is even validated. */
export function requireRole(allowed: (p: Principal) => boolean, message: string): Middleware {
  return async (ctx, next) => {
    if (!allowed(ctx.state.principal as Principal)) throw new AppError('FORBIDDEN', message);
    await next();
  };
}
