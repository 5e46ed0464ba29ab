import Tokens from 'csrf';
import type { Middleware } from 'koa';
import { AppError } from './problem.js';

const tokens = new Tokens();
const COOKIE = 'latch.csrf';

/**
 * CSRF protection for our HTML forms (the synchronizer-token pattern of the `csrf` package):
 * a secret in a signed HttpOnly cookie, a token derived from it in every form. POSTs must carry a
 * matching `_csrf` field and, when the browser sends one, an Origin of this server.
 */
export function csrfProtection(options: { publicOrigin: string; secure: boolean }): Middleware {
  return async (ctx, next) => {
    let secret = ctx.cookies.get(COOKIE, { signed: true });
    if (!secret) {
      // 18 random bytes, drawn at once: a round trip through libuv's pool costs more than they do.
      secret = tokens.secretSync();
      ctx.cookies.set(COOKIE, secret, { signed: true, httpOnly: true, sameSite: 'lax', secure: options.secure, overwrite: true });
    }
    if (ctx.method === 'POST') {
      const origin = ctx.get('origin');
      const token = (ctx.request.body as Record<string, unknown> | undefined)?._csrf;
      if ((origin && origin !== options.publicOrigin) || typeof token !== 'string' || !tokens.verify(secret, token)) {
        throw new AppError('CSRF_FAILED', 'The form was open too long, or was sent from another site. Open it again and send it once more.');
      }
    }
    ctx.state.csrfToken = tokens.create(secret);
    await next();
  };
}
