import Provider, { errors, type FindAccount, type KoaContextWithOIDC } from 'oidc-provider';
import type { AccountFlows } from '../accounts/account-flows.js';
import type { Authenticate } from '../auth/authenticate.js';
import { findUnstorable } from '../db/storable.js';
import { AppError } from '../http/problem.js';
import type { Settings } from '../settings/settings.service.js';
import { MAGIC_LINK_GRANT, PASSWORD_GRANT } from './first-party-clients.js';

/** 429 in the OAuth error format, for a throttled password grant. */
class TooManyAttempts extends errors.OIDCProviderError {
  constructor(description: string) {
    super(429, 'too_many_attempts');
    Object.assign(this, { error_description: description });
  }
}

/** What a password grant answers a user who must confirm their email first; /api/auth/login maps it to 403. */
export const EMAIL_NOT_VERIFIED = 'email address not verified';

/**
 * invalid_grant that says why: the provider's own InvalidGrant answers every cause with "grant
 * request is invalid". Said only once the password is proven, so it tells a guesser nothing.
 */
class EmailNotVerified extends errors.OIDCProviderError {
  constructor() {
    super(400, 'invalid_grant');
    Object.assign(this, { error_description: EMAIL_NOT_VERIFIED });
  }
}

const OIDC_SCOPES = new Set(['openid', 'profile', 'email', 'offline_access']);
// Asked for when the request names no scope: those of these the client is registered with.
const DEFAULT_SCOPES = ['openid', 'profile', 'email'];

/**
 * Issues an access token, a refresh token (when the client may refresh) and an ID token (for
 * `openid`) to a user the grant has already authenticated, through the provider's own models: the
 * same store, introspection, revocation and signing keys as every other token.
 */
async function issueTokens(ctx: KoaContextWithOIDC, deps: FirstPartyDeps, accountId: string, amr: string[]) {
  const { client, params, provider } = ctx.oidc;
  // A client registered with scopes may have only those, as the authorization endpoint's checkScope says.
  const registered = client!.scope ? new Set(client!.scope.split(' ')) : undefined;
  const mayHave = (s: string) => OIDC_SCOPES.has(s) && (registered?.has(s) ?? true);
  const requested = params!.scope == null ? DEFAULT_SCOPES.filter(mayHave) : String(params!.scope).split(' ').filter(Boolean);
  const refused = requested.filter((s) => !mayHave(s));
  if (refused.length) throw new errors.InvalidScope('requested scope is not allowed', refused.join(' '));
  const scope = requested.join(' ');

  // No browser session or consent comes back to this grant: it lives as long as the tokens it
  // issues here (and a refresh extends it, see keepGrantFor), not GRANT_TTL, which would keep a
  // row a year for each sign-in.
  const refreshes = client!.grantTypeAllowed('refresh_token');
  const { refreshTokenTtl, accessTokenTtl } = deps.settings();
  // expiresIn is the provider's own constructor option for every token model; its types omit it for Grant.
  const grant = new provider.Grant({ accountId, clientId: client!.clientId, expiresIn: refreshes ? Math.max(refreshTokenTtl, accessTokenTtl) : accessTokenTtl } as ConstructorParameters<typeof provider.Grant>[0]);
  grant.addOIDCScope(scope);
  const grantId = await grant.save();
  const authTime = Math.floor(Date.now() / 1000);
  const common = { accountId, client: client!, grantId, scope, amr, authTime };

  const at = new provider.AccessToken({ ...common, gty: params!.grant_type as string });
  ctx.oidc.entity('AccessToken', at);
  const accessToken = await at.save();

  let refreshToken: string | undefined;
  if (refreshes) {
    const rt = new provider.RefreshToken({ ...common, gty: params!.grant_type as string, rotations: 0 });
    ctx.oidc.entity('RefreshToken', rt);
    refreshToken = await rt.save();
  }

  let idToken: string | undefined;
  if (requested.includes('openid')) {
    const account = await deps.findAccount(ctx, accountId);
    if (!account) throw new errors.InvalidGrant('account not found');
    const claims = await account.claims('id_token', scope, {}, []);
    const token = new provider.IdToken(claims, { ctx });
    // Like the provider's own grants (conformIdTokenClaims): profile claims come from userinfo.
    (token as unknown as { scope: string }).scope = 'openid';
    // How and when the user signed in, past the scope's mask: the client has no other way to know.
    token.set('auth_time', authTime);
    token.set('amr', amr);
    idToken = await token.issue({ use: 'idtoken' });
  }

  ctx.body = {
    access_token: accessToken,
    token_type: at.tokenType,
    expires_in: at.expiration,
    ...(refreshToken ? { refresh_token: refreshToken } : {}),
    ...(idToken ? { id_token: idToken } : {}),
    scope,
  };
}

/**
 * The password grant (for clients an admin allows it, and the built-in latch-api client) and the
 * magic-link grant (latch-api only). Neither is advertised in discovery.
 */
type FirstPartyDeps = { authenticate: Authenticate; accounts: AccountFlows; findAccount: FindAccount; settings: () => Settings; onFailure: (undo: () => Promise<unknown>) => void };

export function registerFirstPartyGrants(provider: Provider, deps: FirstPartyDeps) {
  provider.registerGrantType(
    PASSWORD_GRANT,
    async (ctx: KoaContextWithOIDC) => {
      const params = ctx.oidc.params as Record<string, string | undefined>;
      if (!params.username || !params.password) throw new errors.InvalidRequest('username and password are required');
      // No account's login or password holds a NUL, and PostgreSQL cannot even look one up: the
      // request is refused as the sign-in form and /api/auth/login refuse it.
      const unstorable = findUnstorable({ username: params.username, password: params.password });
      if (unstorable) throw new errors.InvalidRequest(`${unstorable.message} in ${unstorable.path}`);
      const result = await deps.authenticate({ login: params.username, password: params.password, ip: ctx.ip, userAgent: ctx.get('user-agent') });
      if (!result.ok) {
        if (result.reason === 'throttled') {
          ctx.set('retry-after', String(result.retryAfter));
          throw new TooManyAttempts(`too many failed attempts; retry in ${result.retryAfter} seconds`);
        }
        throw result.reason === 'email_not_verified' ? new EmailNotVerified() : new errors.InvalidGrant('invalid credentials');
      }
      await issueTokens(ctx, deps, result.user.id, ['pwd']);
    },
    ['username', 'password', 'scope'],
  );

  provider.registerGrantType(
    MAGIC_LINK_GRANT,
    async (ctx: KoaContextWithOIDC) => {
      const token = (ctx.oidc.params as Record<string, string | undefined>).token;
      if (!token) throw new errors.InvalidRequest('token is required');
      try {
        // A request that then fails to store the tokens gives the link back, so it still works.
        const { user } = await deps.accounts.useMagicLink(token, { ip: ctx.ip, userAgent: ctx.get('user-agent') }, deps.onFailure);
        await issueTokens(ctx, deps, user.id, ['email']);
      } catch (err) {
        if (err instanceof AppError) throw new errors.InvalidGrant('invalid, expired or used magic link');
        throw err;
      }
    },
    ['token', 'scope'],
  );
}

/** Discovery lists the grants any client may use; the first-party ones are not among them. */
export const HIDDEN_GRANTS = new Set([PASSWORD_GRANT, MAGIC_LINK_GRANT]);
