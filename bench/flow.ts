import { createHash, randomBytes } from 'node:crypto';
import { CookieJar } from 'tough-cookie';
import { REDIRECT_URI, USER, type Ready } from './fixtures.js';

export type Tokens = { access_token: string; refresh_token: string; id_token?: string };

/**
 * One complete sign-in as a browser and an app would do it over HTTP: authorize with PKCE, the
 * login form with the real password, the consent form, the redirect back, and the code exchange.
 */
export async function signInFlow(target: Ready): Promise<Tokens> {
  const jar = new CookieJar();
  const verifier = randomBytes(32).toString('base64url');
  const challenge = createHash('sha256').update(verifier).digest('base64url');
  const params = new URLSearchParams({
    client_id: target.client.id,
    response_type: 'code',
    scope: 'openid profile email',
    redirect_uri: REDIRECT_URI,
    code_challenge: challenge,
    code_challenge_method: 'S256',
    state: 'bench',
  });

  async function hop(url: string, init: RequestInit = {}) {
    const headers = new Headers(init.headers);
    const cookie = await jar.getCookieString(url);
    if (cookie) headers.set('cookie', cookie);
    const res = await fetch(url, { ...init, headers, redirect: 'manual' });
    for (const c of res.headers.getSetCookie()) await jar.setCookie(c, url);
    return res;
  }

  let url = `${target.issuer}/auth?${params}`;
  let init: RequestInit = {};
  for (let i = 0; i < 12; i += 1) {
    const res = await hop(url, init);
    init = {};
    if (res.status >= 300 && res.status < 400) {
      const next = new URL(res.headers.get('location')!, url).toString();
      if (next.startsWith(REDIRECT_URI)) {
        const code = new URL(next).searchParams.get('code');
        if (!code) throw new Error(`no code: ${next}`);
        return exchange(target, code, verifier);
      }
      url = next;
      continue;
    }
    const html = await res.text();
    if (res.status !== 200) throw new Error(`flow stopped at ${url} with ${res.status}`);
    const action = /action="([^"]+\/(login|confirm))"/.exec(html);
    if (!action) throw new Error(`no form at ${url}`);
    const csrf = /name="_csrf" value="([^"]+)"/.exec(html)?.[1] ?? '';
    const fields: Record<string, string> = action[2] === 'login' ? { login: USER.username, password: USER.password, _csrf: csrf } : { _csrf: csrf };
    url = new URL(action[1]!, url).toString();
    init = { method: 'POST', body: new URLSearchParams(fields), headers: { 'content-type': 'application/x-www-form-urlencoded', origin: new URL(url).origin } };
  }
  throw new Error('too many hops');
}

export const basicAuth = (target: Ready) => `Basic ${Buffer.from(`${target.client.id}:${target.client.secret}`).toString('base64')}`;

async function exchange(target: Ready, code: string, verifier: string): Promise<Tokens> {
  const res = await fetch(`${target.issuer}/token`, {
    method: 'POST',
    headers: { authorization: basicAuth(target), 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'authorization_code', code, code_verifier: verifier, redirect_uri: REDIRECT_URI }),
  });
  if (res.status !== 200) throw new Error(`token exchange failed: ${res.status} ${await res.text()}`);
  return (await res.json()) as Tokens;
}
