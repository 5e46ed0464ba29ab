import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { SignJWT, exportJWK, generateKeyPair } from 'jose';

export type FakeGitHubUser = {
  id: number;
  login: string;
  name?: string | null;
  email?: string | null;
  avatarUrl?: string;
  /** What GET /user/emails returns. */
  emails?: { email: string; primary: boolean; verified: boolean }[];
};
export type FakeOidcUser = { sub: string; email?: string; email_verified?: boolean; name?: string; given_name?: string; family_name?: string; picture?: string };
/** The endpoints whose JSON answer `misbehave.oversized` can blow up (token: both sides). */
export type OversizedEndpoint = 'discovery' | 'jwks' | 'token' | 'userinfo' | 'github-user' | 'github-emails';
export type Misbehaviour = {
  deny?: boolean;
  /** The authorization response carries this RFC 9207 `iss` (as Keycloak's and oidc-provider's do). */
  sendIss?: string;
  wrongNonce?: boolean;
  wrongIssuer?: boolean;
  wrongAudience?: boolean;
  /**
   * That endpoint's usual answer, still valid JSON, padded to OVERSIZED_BYTES and streamed (with a
   * Content-Length when `declareLength`, else chunked) until the client hangs up.
   */
  oversized?: { endpoint: OversizedEndpoint; declareLength?: boolean };
  /** The token endpoint refuses every code with invalid_grant, these members added to its JSON answer. */
  refuseToken?: Record<string, unknown>;
  /** The OpenID discovery document names these endpoints instead of its own. */
  discoveryEndpoints?: Partial<Record<'authorization_endpoint' | 'token_endpoint' | 'userinfo_endpoint' | 'jwks_uri', string>>;
};
/** How large an oversized answer is: far beyond what any client should buffer, and any socket buffer. */
export const OVERSIZED_BYTES = 32 * 1024 * 1024;
export type FakeUpstream = {
  url: string;
  clientId: string;
  clientSecret: string;
  github: { authorizationUrl: string; tokenUrl: string; userinfoUrl: string };
  oidc: { issuer: string };
  githubUser: FakeGitHubUser;
  oidcUser: FakeOidcUser;
  misbehave: Misbehaviour;
  authorizeRequests: URLSearchParams[];
  tokenRequests: URLSearchParams[];
  /** Each oversized answer: how many bytes were written before it ended, and whether all were. */
  oversizedAnswers: { endpoint: OversizedEndpoint; bytesWritten: number; complete: boolean }[];
  close(): Promise<void>;
};

type Side = 'github' | 'oidc';
type Grant = { side: Side; redirectUri: string; codeChallenge?: string; nonce?: string; scope: string; user: FakeGitHubUser | FakeOidcUser };
type HttpError = { status: number; error: string; description: string };

const randomToken = () => randomBytes(24).toString('base64url');
const clone = <T>(value: T): T => structuredClone(value);
/** Constant-time compare, so the fake does not teach anyone a bad habit. */
const same = (a: string, b: string) => a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b));

/**
 * A GitHub-(Enterprise-)shaped OAuth server and a minimal OpenID Provider on one loopback port,
 * for tests of Latch's "Sign in with GitHub" / generic OIDC connections. There is no login UI:
 * authorize immediately "signs in" `githubUser` / `oidcUser` and redirects back.
 */
export async function startFakeUpstream(options: { clientId?: string; clientSecret?: string } = {}): Promise<FakeUpstream> {
  const { publicKey, privateKey } = await generateKeyPair('RS256');
  const kid = randomToken().slice(0, 12);
  const jwk = { ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' };

  const codes = new Map<string, Grant>(); // single use: deleted on first redemption
  const tokens = new Map<string, Grant>();

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      // Should not happen; answer rather than crash the test process.
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(`fake upstream error: ${err instanceof Error ? err.message : String(err)}`);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const url = `http://127.0.0.1:${port}`;
  const issuer = `${url}/oidc`;

  const upstream: FakeUpstream = {
    url,
    clientId: options.clientId ?? 'latch-test',
    clientSecret: options.clientSecret ?? 'fake-secret-123456',
    github: { authorizationUrl: `${url}/login/oauth/authorize`, tokenUrl: `${url}/login/oauth/access_token`, userinfoUrl: `${url}/api/v3/user` },
    oidc: { issuer },
    githubUser: { id: 1001, login: 'octocat', name: 'The Octocat', email: 'octocat@example.com', emails: [{ email: 'octocat@example.com', primary: true, verified: true }] },
    oidcUser: { sub: 'oidc-user-1', email: 'oidc.user@example.com', email_verified: true, name: 'Oidc User', given_name: 'Oidc', family_name: 'User' },
    misbehave: {},
    authorizeRequests: [],
    tokenRequests: [],
    oversizedAnswers: [],
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections(); // fetch keeps connections alive; don't wait for them to time out
      }),
  };

  // The answers of this request to blow up (misbehave.oversized), by endpoint.
  const oversize = new WeakMap<ServerResponse, OversizedEndpoint>();

  const send = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
    const endpoint = oversize.get(res);
    if (endpoint && status === 200 && typeof body === 'object' && body !== null) return sendOversized(res, endpoint, body, headers);
    const text = typeof body === 'string' ? body : JSON.stringify(body);
    const type = typeof body === 'string' ? 'text/plain; charset=utf-8' : 'application/json';
    res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store', ...headers });
    res.end(text);
  };

  /**
   * `body` as JSON with a padding member (an extra element of an array) that makes it
   * OVERSIZED_BYTES long, written as fast as the client reads it, until it hangs up.
   */
  function sendOversized(res: ServerResponse, endpoint: OversizedEndpoint, body: object, headers: Record<string, string>) {
    const json = JSON.stringify(body);
    const [open, close] = Array.isArray(body) ? [`${json.slice(0, -1)}${body.length ? ',' : ''}{"padding":"`, '"}]'] : [`${json.slice(0, -1)}${json === '{}' ? '' : ','}"padding":"`, '"}'];
    const padding = OVERSIZED_BYTES - open.length - close.length;
    const record = { endpoint, bytesWritten: 0, complete: false };
    upstream.oversizedAnswers.push(record);
    res.writeHead(200, {
      'content-type': 'application/json',
      'cache-control': 'no-store',
      ...(upstream.misbehave.oversized?.declareLength ? { 'content-length': String(OVERSIZED_BYTES) } : {}),
      ...headers,
    });
    const chunk = Buffer.alloc(64 * 1024, 'x');
    let left = padding;
    let hungUp = false;
    res.on('close', () => (hungUp = !record.complete));
    res.on('error', () => (hungUp = true)); // a write after the client left
    const write = (data: Buffer | string) => {
      record.bytesWritten += Buffer.byteLength(data);
      return res.write(data);
    };
    const pump = () => {
      while (left > 0 && !hungUp) {
        const piece = left >= chunk.length ? chunk : chunk.subarray(0, left);
        left -= piece.length;
        if (!write(piece)) return void res.once('drain', pump);
      }
      if (hungUp) return;
      write(close);
      res.end(() => (record.complete = true));
    };
    write(open);
    pump();
  }

  async function handle(req: IncomingMessage, res: ServerResponse) {
    const reqUrl = new URL(req.url ?? '/', url);
    const route = `${req.method} ${reqUrl.pathname}`;
    const endpoint = ENDPOINTS[route];
    if (endpoint && endpoint === upstream.misbehave.oversized?.endpoint) oversize.set(res, endpoint);
    switch (route) {
      case 'GET /login/oauth/authorize':
        return authorize('github', reqUrl.searchParams, res);
      case 'POST /login/oauth/access_token':
        return token('github', req, res);
      case 'GET /api/v3/user':
      case 'GET /api/v3/user/emails': {
        const user = bearer(req, 'github') as FakeGitHubUser | undefined;
        if (!user) return send(res, 401, { message: 'Bad credentials' });
        if (route.endsWith('/emails')) return send(res, 200, user.emails ?? []);
        return send(res, 200, { id: user.id, login: user.login, name: user.name ?? null, email: user.email ?? null, avatar_url: user.avatarUrl ?? `${url}/avatars/${user.id}` });
      }
      case 'GET /oidc/.well-known/openid-configuration':
        return send(res, 200, {
          issuer,
          authorization_endpoint: `${issuer}/authorize`,
          token_endpoint: `${issuer}/token`,
          userinfo_endpoint: `${issuer}/userinfo`,
          jwks_uri: `${issuer}/jwks`,
          response_types_supported: ['code'],
          subject_types_supported: ['public'],
          id_token_signing_alg_values_supported: ['RS256'],
          code_challenge_methods_supported: ['S256'],
          token_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post'],
          scopes_supported: ['openid', 'email', 'profile'],
          ...upstream.misbehave.discoveryEndpoints,
        });
      case 'GET /oidc/jwks':
        return send(res, 200, { keys: [jwk] });
      case 'GET /oidc/authorize':
        return authorize('oidc', reqUrl.searchParams, res);
      case 'POST /oidc/token':
        return token('oidc', req, res);
      case 'GET /oidc/userinfo': {
        const user = bearer(req, 'oidc');
        if (!user) return send(res, 401, { error: 'invalid_token' }, { 'www-authenticate': 'Bearer error="invalid_token"' });
        return send(res, 200, user);
      }
      default:
        return send(res, 404, 'not found');
    }
  }

  function authorize(side: Side, query: URLSearchParams, res: ServerResponse) {
    upstream.authorizeRequests.push(new URLSearchParams(query));
    // Like a real server: without a known client and a redirect_uri there is nowhere safe to redirect errors to.
    if (query.get('client_id') !== upstream.clientId) return send(res, 400, `unknown client_id ${JSON.stringify(query.get('client_id'))}`);
    const redirectUri = query.get('redirect_uri');
    if (!redirectUri || !URL.canParse(redirectUri)) return send(res, 400, 'missing or invalid redirect_uri');
    if (side === 'oidc' && query.get('response_type') !== 'code') return send(res, 400, 'response_type must be code');
    const codeChallenge = query.get('code_challenge') ?? undefined;
    if (codeChallenge && (query.get('code_challenge_method') ?? 'plain') !== 'S256') return send(res, 400, 'only code_challenge_method=S256 is supported');

    const back = new URL(redirectUri);
    const state = query.get('state');
    if (upstream.misbehave.deny) {
      back.searchParams.set('error', 'access_denied');
      back.searchParams.set('error_description', 'The user has denied your application access.');
    } else {
      const code = randomToken();
      // Snapshot the user now, so a test may switch users between logins.
      const user = clone(side === 'github' ? upstream.githubUser : upstream.oidcUser);
      codes.set(code, { side, redirectUri, codeChallenge, nonce: query.get('nonce') ?? undefined, scope: query.get('scope') ?? '', user });
      back.searchParams.set('code', code);
    }
    if (state !== null) back.searchParams.set('state', state);
    if (upstream.misbehave.sendIss) back.searchParams.set('iss', upstream.misbehave.sendIss);
    res.writeHead(302, { location: back.href });
    res.end();
  }

  async function token(side: Side, req: IncomingMessage, res: ServerResponse) {
    const form = new URLSearchParams(await readBody(req));
    upstream.tokenRequests.push(form);
    // GitHub answers form-encoded unless asked for JSON; the OIDC side always speaks JSON.
    const json = side === 'oidc' || (req.headers.accept ?? '').includes('application/json');
    const reply = (status: number, body: Record<string, string | number>) =>
      json ? send(res, status, body) : send(res, status, new URLSearchParams(Object.entries(body).map(([k, v]) => [k, String(v)])).toString(), { 'content-type': 'application/x-www-form-urlencoded; charset=utf-8' });

    const problem = checkTokenRequest(side, req, form);
    if ('error' in problem) return reply(problem.status, { error: problem.error, error_description: problem.description });
    if (upstream.misbehave.refuseToken) return reply(400, { error: 'invalid_grant', error_description: 'refused', ...upstream.misbehave.refuseToken });
    const grant = problem;

    const accessToken = randomToken();
    tokens.set(accessToken, grant);
    if (side === 'github') return reply(200, { access_token: accessToken, token_type: 'bearer', scope: grant.scope });

    const { sub, ...claims } = grant.user as FakeOidcUser;
    const { wrongIssuer, wrongAudience, wrongNonce } = upstream.misbehave;
    const idToken = await new SignJWT({ ...claims, nonce: wrongNonce ? 'not-the-nonce' : grant.nonce })
      .setProtectedHeader({ alg: 'RS256', kid })
      .setIssuer(wrongIssuer ? 'http://wrong-issuer.example' : issuer)
      .setAudience(wrongAudience ? 'someone-else' : upstream.clientId)
      .setSubject(sub)
      .setIssuedAt()
      .setExpirationTime('5m')
      .sign(privateKey);
    return reply(200, { access_token: accessToken, token_type: 'Bearer', expires_in: 300, scope: grant.scope, id_token: idToken });
  }

  /** Returns the redeemed grant, or the OAuth error to answer with. */
  function checkTokenRequest(side: Side, req: IncomingMessage, form: URLSearchParams): Grant | HttpError {
    const fail = (status: number, error: string, description: string): HttpError => ({ status, error, description });
    let id = form.get('client_id');
    let secret = form.get('client_secret');
    const auth = req.headers.authorization ?? '';
    if (/^basic /i.test(auth)) {
      // RFC 6749 2.3.1: both halves are form-urlencoded before base64.
      const decoded = Buffer.from(auth.slice(6).trim(), 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      id = formDecode(decoded.slice(0, Math.max(colon, 0)));
      secret = colon < 0 ? null : formDecode(decoded.slice(colon + 1));
    }
    if (id !== upstream.clientId || secret === null || !same(secret, upstream.clientSecret)) return fail(401, 'invalid_client', 'client authentication failed');
    if (side === 'oidc' && form.get('grant_type') !== 'authorization_code') return fail(400, 'unsupported_grant_type', 'only authorization_code is supported');

    const code = form.get('code') ?? '';
    const grant = codes.get(code);
    codes.delete(code); // single use, even when the rest of the request is wrong
    if (!grant || grant.side !== side) return fail(400, 'invalid_grant', 'The code passed is incorrect or expired.');
    if (form.get('redirect_uri') !== grant.redirectUri) return fail(400, 'invalid_grant', 'The redirect_uri MUST match the registered callback URL for this application.');
    if (grant.codeChallenge) {
      const verifier = form.get('code_verifier');
      if (!verifier) return fail(400, 'invalid_grant', 'code_verifier is required');
      if (!same(createHash('sha256').update(verifier).digest('base64url'), grant.codeChallenge)) return fail(400, 'invalid_grant', 'code_verifier does not match code_challenge');
    }
    return grant;
  }

  /** The user snapshot behind `Authorization: Bearer|token <access token>` on this side, if any. */
  function bearer(req: IncomingMessage, side: Side) {
    const match = /^(?:bearer|token) +(\S+)$/i.exec(req.headers.authorization ?? '');
    const grant = match?.[1] ? tokens.get(match[1]) : undefined;
    return grant?.side === side ? grant.user : undefined;
  }

  return upstream;
}

const ENDPOINTS: Record<string, OversizedEndpoint> = {
  'GET /oidc/.well-known/openid-configuration': 'discovery',
  'GET /oidc/jwks': 'jwks',
  'POST /oidc/token': 'token',
  'POST /login/oauth/access_token': 'token',
  'GET /oidc/userinfo': 'userinfo',
  'GET /api/v3/user': 'github-user',
  'GET /api/v3/user/emails': 'github-emails',
};

/** Undo application/x-www-form-urlencoded; malformed input decodes to null (so it fails as invalid_client). */
function formDecode(value: string): string | null {
  try {
    return decodeURIComponent(value.replace(/\+/g, ' '));
  } catch {
    return null;
  }
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > 64 * 1024) return req.destroy(new Error('body too large')); // a test bug, not a real client
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}
