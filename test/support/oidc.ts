import * as oidc from 'openid-client';
import type { TestServer } from './server.js';
import { createUserAgent } from './user-agent.js';

export const REDIRECT_URI = 'http://127.0.0.1:9/callback';
export const POST_LOGOUT_URI = 'http://127.0.0.1:9/signed-out';
export const PASSWORD = 'correct horse battery staple';

/** One user and the usual clients, created through Latch's own services. */
export async function seed(server: TestServer) {
  const user = await server.users.create({
    email: 'Ada@Example.com',
    username: 'ada',
    givenName: 'Ada',
    familyName: 'Lovelace',
    password: PASSWORD,
    emailVerified: true,
  });
  const confidential = await server.clients.create({
    name: 'Notes',
    redirectUris: [REDIRECT_URI],
    postLogoutRedirectUris: [POST_LOGOUT_URI],
    grantTypes: ['authorization_code', 'refresh_token', 'client_credentials'],
  });
  const spa = await server.clients.create({ name: 'Board', public: true, redirectUris: [REDIRECT_URI] });
  const trusted = await server.clients.create({ name: 'Console', redirectUris: [REDIRECT_URI], trusted: true });
  return { user, confidential, spa, trusted };
}

/** An openid-client configuration for a client of the test server (http is fine on loopback). */
export async function relyingParty(server: TestServer, client: { clientId: string; clientSecret?: string }) {
  const auth = client.clientSecret ? oidc.ClientSecretBasic(client.clientSecret) : oidc.None();
  return oidc.discovery(new URL(server.issuer), client.clientId, undefined, auth, { execute: [oidc.allowInsecureRequests] });
}

/** Starts an authorization request with PKCE S256; returns what the RP must remember. */
export async function authorizationRequest(config: oidc.Configuration, params: Record<string, string> = {}) {
  const verifier = oidc.randomPKCECodeVerifier();
  const state = oidc.randomState();
  const nonce = oidc.randomNonce();
  const url = oidc.buildAuthorizationUrl(config, {
    redirect_uri: REDIRECT_URI,
    scope: 'openid profile email',
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
    nonce,
    ...params,
  });
  return { url: url.toString(), verifier, state, nonce };
}

/**
 * The whole browser leg over HTTP: authorize, sign in with the login form, allow on the consent
 * page when asked, and stop at the redirect back to the RP. Returns the callback URL.
 */
export async function signIn(
  config: oidc.Configuration,
  options: { login?: string; password?: string; params?: Record<string, string>; agent?: ReturnType<typeof createUserAgent> } = {},
) {
  const agent = options.agent ?? createUserAgent();
  const request = await authorizationRequest(config, options.params);
  let page = await agent.navigate(request.url, {}, REDIRECT_URI);
  let sawConsent = false;
  if (page.html.includes('action="/interaction/') && page.html.includes('/login"')) {
    page = await agent.submit(page, '/login', { login: options.login ?? 'ada', password: options.password ?? PASSWORD }, REDIRECT_URI);
  }
  if (page.html.includes('/confirm"')) {
    sawConsent = true;
    page = await agent.submit(page, '/confirm', {}, REDIRECT_URI);
  }
  if (!page.url.startsWith(REDIRECT_URI)) throw new Error(`sign-in did not return to the client: ${page.status} ${page.url}\n${page.html.slice(0, 1500)}`);
  const tokens = async () =>
    oidc.authorizationCodeGrant(config, new URL(page.url), {
      pkceCodeVerifier: request.verifier,
      expectedState: request.state,
      expectedNonce: request.nonce,
      idTokenExpected: true,
    });
  return { agent, callbackUrl: page.url, request, sawConsent, tokens };
}
