import * as oidc from 'openid-client';
import { findUnstorable } from '../db/storable.js';
import { boundedFetch, UpstreamBodyTooLarge } from './bounded-fetch.js';
import { SecretKeyUnknownError } from './secret-box.js';
import type { Connection, ConnectionsService } from './connections.service.js';
import { NewUser } from '../users/users.service.js';
import { effectiveSettings, mayCallUpstream, type ClaimField } from './connection-settings.js';

/** Why an upstream sign-in failed, in words a user and an operator can act on. */
export type UpstreamFailure = 'denied' | 'unreachable' | 'rejected' | 'issuer_mismatch' | 'invalid_id_token' | 'invalid_response' | 'response_too_large' | 'no_subject' | 'secret_unreadable';

/** Failures that are the upstream's (no answer, or one too large to read): a bad gateway, 502. */
export const upstreamsFault = (reason: string) => reason === 'unreachable' || reason === 'response_too_large';

/** Failures of this server's own set-up (a client secret it has no key for): unavailable, 503, until an operator fixes it. */
export const setupFault = (reason: string) => reason === 'secret_unreadable';

export class UpstreamError extends Error {
  constructor(
    readonly reason: UpstreamFailure,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Who the upstream says signed in, in local terms. */
export type UpstreamProfile = {
  subject: string;
  email?: string;
  emailVerified: boolean;
  name?: string;
  givenName?: string;
  familyName?: string;
  picture?: string;
  username?: string;
};

/** What the browser's state cookie keeps between leaving for the upstream and coming back. */
export type PendingAuthorization = { state: string; nonce?: string; codeVerifier: string };

// Every upstream request (discovery, keys, token, userinfo, GitHub's /user and /user/emails) goes
// through openid-client with this fetch, which reads at most UPSTREAM_BODY_LIMIT of an answer.
const upstreamFetch = boundedFetch();
const isOidcKind = (c: Connection) => c.kind === 'oidc' || c.kind === 'google';

/**
 * The endpoints Latch itself is configured to call for a connection: an OIDC kind's issuer (the
 * rest comes from its discovery), or an OAuth 2 kind's three. Fields a kind does not use are left
 * out, so that one set to a loopback http URL cannot allow plain http for the others.
 */
export const configuredEndpoints = (c: Connection) => {
  const e = effectiveSettings(c);
  return (isOidcKind(c) ? [e.issuer] : [e.authorizationUrl, e.tokenUrl, e.userinfoUrl]).filter((u): u is string => Boolean(u));
};

/**
 * `err` and the errors of its cause chain, itself first (the library wraps what fetch throws).
 * Only Errors: oauth4webapi puts the upstream's JSON error answer in `cause`, whose fields the
 * upstream chooses.
 */
function causes(err: unknown): Error[] {
  const chain: Error[] = [];
  for (let e = err; e instanceof Error && chain.length < 5; e = e.cause) chain.push(e);
  return chain;
}

// Node's network errors: no connection, no name, a dropped connection.
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_SOCKET']);

/** A request that got no answer: a timeout (openid-client's OAUTH_TIMEOUT wraps fetch's), or the network. */
const unanswered = (err: unknown) =>
  causes(err).some((e) => {
    const code = (e as { code?: unknown }).code;
    return e.name === 'TimeoutError' || e.name === 'AbortError' || code === 'OAUTH_TIMEOUT' || (typeof code === 'string' && NETWORK_CODES.has(code)) || (e instanceof TypeError && /fetch/i.test(e.message));
  });

/** Turns a library or network error into an UpstreamError with a reason. */
function classify(err: unknown, connection: Connection): UpstreamError {
  if (err instanceof UpstreamError) return err;
  const code = (err as { code?: string }).code ?? '';
  const name = (err as Error).name ?? '';
  const who = connection.name;
  if (causes(err).some((e) => e instanceof SecretKeyUnknownError))
    return new UpstreamError('secret_unreadable', `Sign-in with ${who} is not available right now.`, { cause: err });
  if (causes(err).some((e) => e instanceof UpstreamBodyTooLarge))
    return new UpstreamError('response_too_large', `${who} sent an answer larger than we accept (1 MiB).`, { cause: err });
  if (unanswered(err)) return new UpstreamError('unreachable', `${who} could not be reached.`, { cause: err });
  if (code === 'OAUTH_AUTHORIZATION_RESPONSE_ERROR') {
    const error = (err as { error?: string }).error;
    return error === 'access_denied'
      ? new UpstreamError('denied', `You declined to sign in with ${who}.`, { cause: err })
      : new UpstreamError('rejected', `${who} refused the sign-in (${error ?? 'error'}).`, { cause: err });
  }
  // Discovery named another issuer than the one configured (or was not for this issuer at all).
  if (code === 'OAUTH_JSON_ATTRIBUTE_COMPARISON_FAILED')
    return new UpstreamError('issuer_mismatch', `Sign-in with ${who} is not set up correctly (its issuer does not match).`, { cause: err });
  if (code === 'OAUTH_RESPONSE_BODY_ERROR') return new UpstreamError('rejected', `${who} refused to complete the sign-in.`, { cause: err });
  if (code.startsWith('OAUTH_JWT') || code === 'OAUTH_KEY_SELECTION_FAILED' || name.startsWith('JWS') || name.startsWith('JWT'))
    return new UpstreamError('invalid_id_token', `${who} sent an identity token that is not valid for this sign-in.`, { cause: err });
  return new UpstreamError('invalid_response', `${who} answered in a way we could not use.`, { cause: err });
}

function claimAt(claims: Record<string, unknown>, path: string): unknown {
  let value: unknown = claims;
  for (const key of path.split('.')) value = value && typeof value === 'object' ? (value as Record<string, unknown>)[key] : undefined;
  return value;
}

// Cut to `max` UTF-16 units, never through a character: half of one is text no database stores.
const cut = (s: string, max: number) => s.slice(0, s.length > max && /[\uD800-\uDBFF]/.test(s[max - 1]!) ? max - 1 : max);
const text = (v: unknown, max = 500) => (typeof v === 'string' && v.trim() ? cut(v.trim(), max) : typeof v === 'number' ? String(v) : undefined);

/** Maps upstream claims to a profile through the connection's claim mapping. */
export function profileFrom(claims: Record<string, unknown>, mapping: Record<ClaimField, string>): UpstreamProfile {
  const get = (field: ClaimField, max?: number) => text(claimAt(claims, mapping[field]), max);
  // Identifiers are never cut: two long ones alike in their first characters would be one account.
  const whole = (v: unknown, max: number) => { const t = text(v, Infinity); return t !== undefined && t.length > max ? null : t; };
  const mapped = whole(claimAt(claims, mapping.subject), 255);
  const subject = mapped !== undefined ? mapped : mapping.subject === 'sub' ? whole(claims.id, 255) : undefined;
  if (subject === null) throw new UpstreamError('invalid_response', 'The upstream account has an identifier longer than we can store.');
  if (!subject) throw new UpstreamError('no_subject', 'The upstream account has no identifier we can use.');
  const email = whole(claimAt(claims, mapping.email), 254) ?? undefined;
  const verified = claimAt(claims, mapping.emailVerified);
  const profile: UpstreamProfile = {
    subject,
    // An address a local account could not hold (`jane@intranet`) counts as none.
    email: email && NewUser.shape.email.safeParse(email).success ? email : undefined,
    emailVerified: verified === true || verified === 'true',
    name: get('name', 200),
    givenName: get('givenName', 100),
    familyName: get('familyName', 100),
    picture: get('picture', 2000)?.match(/^https?:\/\//) ? get('picture', 2000) : undefined,
    username: get('username', 64),
  };
  // Text no database could store (a NUL, a lone surrogate) is the upstream's fault, not a 500.
  if (findUnstorable(profile)) throw new UpstreamError('invalid_response', 'The upstream account has details we cannot store.');
  return profile;
}

/**
 * The callback without its RFC 9207 `iss`, for a plain OAuth 2 server: its issuer identifier is not
 * configured (the one its configuration holds is made up from its authorization endpoint), so a
 * server that sends one (Keycloak, Latch itself) would fail every sign-in on the comparison. A
 * response is tied to its connection by the callback path and the state cookie instead.
 */
function withoutIssuer(callbackUrl: URL) {
  const url = new URL(callbackUrl);
  url.searchParams.delete('iss');
  return url;
}

/** The upstream leg of a federated sign-in, on openid-client: authorization code with PKCE. */
export function createUpstream(deps: { connections: ConnectionsService; timeoutSeconds: number }) {
  // Discovery and client set-up, once per version of a connection (an edit makes a new key).
  const configs = new Map<string, Promise<oidc.Configuration>>();

  async function build(c: Connection): Promise<oidc.Configuration> {
    const e = effectiveSettings(c);
    const secret = await deps.connections.clientSecretOf(c);
    // GitHub takes the secret in the form body; standard servers accept HTTP Basic.
    const auth = !secret ? oidc.None() : c.kind === 'github' ? oidc.ClientSecretPost(secret) : oidc.ClientSecretBasic(secret);
    // Plain http is accepted only for loopback upstreams (checked when the connection is saved).
    const execute = configuredEndpoints(c).some((u) => u.startsWith('http:')) ? [oidc.allowInsecureRequests] : [];
    if (isOidcKind(c)) {
      // ID tokens are checked for issuer, audience, nonce and lifetime, and their signature
      // against the upstream's published keys.
      const config = await oidc.discovery(new URL(e.issuer!), c.clientId, undefined, auth, {
        execute: [...execute, oidc.enableNonRepudiationChecks],
        timeout: deps.timeoutSeconds,
        // The discovery request, and every later one of this configuration (keys included).
        [oidc.customFetch]: upstreamFetch,
      });
      // A loopback issuer over http may not send Latch to plain-http hosts elsewhere.
      const m = config.serverMetadata();
      const named = [m.authorization_endpoint, m.token_endpoint, m.userinfo_endpoint, m.jwks_uri].filter((u): u is string => typeof u === 'string');
      if (named.some((u) => !mayCallUpstream(u))) throw new UpstreamError('invalid_response', `${c.name}'s discovery document names an endpoint that is neither https nor on this host.`);
      return config;
    }
    const config = new oidc.Configuration(
      {
        issuer: new URL(e.authorizationUrl!).origin,
        authorization_endpoint: e.authorizationUrl!,
        token_endpoint: e.tokenUrl!,
        ...(e.userinfoUrl ? { userinfo_endpoint: e.userinfoUrl } : {}),
      },
      c.clientId,
      undefined,
      auth,
    );
    for (const f of execute) f(config);
    config.timeout = deps.timeoutSeconds;
    config[oidc.customFetch] = upstreamFetch;
    return config;
  }

  function configurationFor(c: Connection) {
    const key = `${c.id}:${c.updatedAt.getTime()}`;
    let pending = configs.get(key);
    if (!pending) {
      for (const k of configs.keys()) if (k.startsWith(`${c.id}:`)) configs.delete(k);
      pending = build(c);
      configs.set(key, pending);
      // A failed discovery is retried on the next sign-in rather than remembered.
      pending.catch(() => configs.delete(key));
    }
    return pending;
  }

  function scopeOf(c: Connection) {
    const scopes = effectiveSettings(c).scopes;
    return (isOidcKind(c) && !scopes.includes('openid') ? ['openid', ...scopes] : scopes).join(' ');
  }

  async function fetchJson(config: oidc.Configuration, accessToken: string, url: string, c: Connection) {
    const res = await oidc.fetchProtectedResource(config, accessToken, new URL(url), 'GET', undefined, new Headers({ accept: 'application/json', 'user-agent': 'Latch' }));
    if (!res.ok) throw new UpstreamError('invalid_response', `${c.name} did not return the account's details (HTTP ${res.status}).`);
    return (await res.json()) as unknown;
  }

  /** GitHub: /user, and /user/emails for an address GitHub has verified. */
  async function githubClaims(config: oidc.Configuration, accessToken: string, c: Connection) {
    const userinfoUrl = effectiveSettings(c).userinfoUrl!;
    const user = (await fetchJson(config, accessToken, userinfoUrl, c)) as Record<string, unknown>;
    // A failure here is GitHub's, reported as such: without the list no address counts as verified.
    const emails = await fetchJson(config, accessToken, `${userinfoUrl.replace(/\/+$/, '')}/emails`, c);
    const list = Array.isArray(emails) ? (emails as { email?: unknown; primary?: unknown; verified?: unknown }[]) : [];
    const chosen = list.find((m) => m.primary === true && m.verified === true) ?? list.find((m) => m.verified === true);
    if (chosen && typeof chosen.email === 'string') return { ...user, email: chosen.email, email_verified: true };
    return { ...user, email_verified: false };
  }

  return {
    /** Where to send the browser, and what to remember for the callback. */
    async authorizationRequest(c: Connection, redirectUri: string): Promise<PendingAuthorization & { url: string }> {
      try {
        const config = await configurationFor(c);
        const codeVerifier = oidc.randomPKCECodeVerifier();
        const state = oidc.randomState();
        const nonce = isOidcKind(c) ? oidc.randomNonce() : undefined;
        const url = oidc.buildAuthorizationUrl(config, {
          redirect_uri: redirectUri,
          scope: scopeOf(c),
          state,
          code_challenge: await oidc.calculatePKCECodeChallenge(codeVerifier),
          code_challenge_method: 'S256',
          ...(nonce ? { nonce } : {}),
        });
        return { url: url.href, state, nonce, codeVerifier };
      } catch (err) {
        throw classify(err, c);
      }
    },

    /**
     * Completes the upstream leg from the callback URL (as registered, with the query the
     * upstream sent): checks state, exchanges the code with the PKCE verifier, validates the ID
     * token (nonce included) for OIDC kinds, and reads the account's claims.
     */
    async complete(c: Connection, callbackUrl: URL, pending: PendingAuthorization): Promise<UpstreamProfile> {
      try {
        const config = await configurationFor(c);
        const tokens = await oidc.authorizationCodeGrant(config, isOidcKind(c) ? callbackUrl : withoutIssuer(callbackUrl), {
          pkceCodeVerifier: pending.codeVerifier,
          expectedState: pending.state,
          expectedNonce: pending.nonce,
          idTokenExpected: isOidcKind(c),
        });
        const e = effectiveSettings(c);
        let claims: Record<string, unknown>;
        if (c.kind === 'github') claims = await githubClaims(config, tokens.access_token, c);
        else if (isOidcKind(c)) {
          const idClaims = tokens.claims()!;
          const userinfo = config.serverMetadata().userinfo_endpoint ? await oidc.fetchUserInfo(config, tokens.access_token, idClaims.sub) : {};
          claims = { ...idClaims, ...userinfo };
        } else claims = (await fetchJson(config, tokens.access_token, e.userinfoUrl!, c)) as Record<string, unknown>;
        return profileFrom(claims, e.claims);
      } catch (err) {
        throw classify(err, c);
      }
    },
  };
}

export type Upstream = ReturnType<typeof createUpstream>;
