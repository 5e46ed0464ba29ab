import type { Context, Middleware } from 'koa';
import type { Logger } from 'pino';
import { databaseUnavailable } from '../db/errors.js';
import { UNAVAILABLE_RETRY_SECONDS } from '../http/problem.js';

const UNAVAILABLE = { error: 'temporarily_unavailable', error_description: 'the service cannot answer for a moment; try again shortly' };

/**
 * Makes the provider's answer to a failure of its database a 503 to retry, in its own error
 * format: called from its server_error event, after it set a 500 and its body (JSON, or its error
 * page for a browser, which stays).
 */
export function answerUnavailable(ctx: Context, err: unknown) {
  if (!databaseUnavailable(err)) return;
  ctx.status = 503;
  ctx.set('retry-after', String(UNAVAILABLE_RETRY_SECONDS));
  if (ctx.body && typeof ctx.body === 'object' && !Buffer.isBuffer(ctx.body)) ctx.body = UNAVAILABLE;
}

/**
 * A failure after the provider answered (its writes could not be stored, see unit-of-work.ts)
 * reaches this instead of the provider's error handler: answered in the OAuth error format, as the
 * provider answers its own, 503 when the database could not serve, except on the endpoints that
 * answer browsers (`documents`), which get the site's error page.
 */
export function oauthFailures(logger: Logger, documents: (path: string) => boolean): Middleware {
  return async (ctx, next) => {
    try {
      await next();
    } catch (err) {
      if (documents(ctx.path) || ctx.accepts('json', 'html') === 'html') throw err;
      const unavailable = databaseUnavailable(err);
      logger.error({ err, path: ctx.path }, 'request failed');
      ctx.status = unavailable ? 503 : 500;
      if (unavailable) ctx.set('retry-after', String(UNAVAILABLE_RETRY_SECONDS));
      ctx.set('cache-control', 'no-store');
      ctx.body = unavailable ? UNAVAILABLE : { error: 'server_error', error_description: 'oops! something went wrong' };
    }
  };
}
