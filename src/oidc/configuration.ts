import type { Configuration, KoaContextWithOIDC } from 'oidc-provider';
import type { Config } from '../config/env.js';
import type { CookieKeyRing } from '../keys/cookie-keys.js';
import type { Settings } from '../settings/settings.service.js';
import { createInteractionPolicy } from './interaction-policy.js';

// Protocol decisions only: claims, scopes, features, lifetimes, cookies. Behaviour that needs
// services (accounts, resources, pages) is wired in provider.ts.
export const CLAIMS = {
  openid: ['sub'],
  profile: ['name', 'given_name', 'family_name', 'preferred_username', 'picture', 'updated_at'],
  email: ['email', 'email_verified'],
};

/**
 * A refresh keeps its grant alive at least as long as the refresh token it issues: the provider
 * refuses a refresh token whose grant has expired, so without this an app in daily use would lose
 * access GRANT_TTL after its sign-in. The grant is given half as long again, so it is written at
 * most once every half refresh-token lifetime, not at every refresh.
 */
async function keepGrantFor(grant: { exp?: number; save(): Promise<string> } | undefined, seconds: number) {
  if (!grant?.exp) return;
  const now = Math.floor(Date.now() / 1000);
  if (grant.exp - now >= seconds) return;
  grant.exp = now + Math.ceil(seconds * 1.5);
  await grant.save();
}

export function baseConfiguration(config: Config, cookieKeys: string[] | CookieKeyRing, settings: () => Settings): Configuration {
  const { ttl } = config.oidc;
  return {
    claims: CLAIMS,
    // latch:admin is granted only to clients an admin registers with it explicitly (clients.service).
    scopes: ['openid', 'offline_access', 'profile', 'email', 'latch:admin'],
    // The authorization-code flow only: no implicit or hybrid responses that put tokens in URLs.
    responseTypes: ['code', 'none'],
    clientDefaults: {
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
      id_token_signed_response_alg: 'RS256',
    },
    // Secrets are stored hashed, so methods that need the secret itself (client_secret_jwt,
    // HS256-signed ID tokens) are not offered; nor is private_key_jwt, as no client can register keys.
    clientAuthMethods: ['none', 'client_secret_basic', 'client_secret_post'],
    enabledJWA: { idTokenSigningAlgValues: ['RS256', 'ES256', 'PS256'] },
    // oidc-provider 9 supports only S256; PKCE is required for public clients (its default).
    pkce: { required: (_ctx, client) => client.clientAuthMethod === 'none' },
    // Every refresh rotates; presenting a rotated one revokes the whole grant (oidc-provider's behaviour).
    rotateRefreshToken: async (ctx) => {
      await keepGrantFor(ctx.oidc.entities.Grant, settings().refreshTokenTtl);
      return true;
    },
    // Refresh tokens for every client allowed the grant, without requiring offline_access + prompt=consent.
    issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
    cookies: {
      keys: cookieKeys,
      long: { httpOnly: true, sameSite: 'lax', signed: true },
      short: { httpOnly: true, sameSite: 'lax', signed: true },
    },
    ttl: {
      // Access, ID and refresh token lifetimes are runtime settings: changes apply without a restart.
      AccessToken: (_ctx, token) => token.resourceServer?.accessTokenTTL ?? settings().accessTokenTtl,
      AuthorizationCode: ttl.authorizationCode,
      ClientCredentials: (_ctx, token) => token.resourceServer?.accessTokenTTL ?? ttl.clientCredentials,
      IdToken: () => settings().idTokenTtl,
      RefreshToken: () => settings().refreshTokenTtl,
      Session: ttl.session,
      Interaction: ttl.interaction,
      Grant: ttl.grant,
    },
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}`, policy: createInteractionPolicy() },
    features: {
      devInteractions: { enabled: false },
      // Resource servers introspect tokens issued to other clients: any confidential client may.
      introspection: { enabled: true, allowedPolicy: async (_ctx, client) => client.clientAuthMethod !== 'none' },
      // Only the client a token was issued to may revoke it.
      revocation: { enabled: true, allowedPolicy: async (_ctx, client, token) => token.clientId === client.clientId },
      userinfo: { enabled: true },
      clientCredentials: { enabled: true },
      rpInitiatedLogout: { enabled: true },
    },
    extraClientMetadata: {
      // trusted: first party, no consent page. allowed_resources: APIs it may ask tokens for (empty: any).
      properties: ['trusted', 'allowed_resources'],
      validator(_ctx, key, value) {
        if (key === 'trusted' && value !== undefined && typeof value !== 'boolean') {
          throw new Error('trusted must be a boolean');
        }
        if (key === 'allowed_resources' && value !== undefined && !(Array.isArray(value) && value.every((v) => typeof v === 'string'))) {
          throw new Error('allowed_resources must be an array of strings');
        }
      },
    },
  };
}

export type OidcContext = KoaContextWithOIDC;
