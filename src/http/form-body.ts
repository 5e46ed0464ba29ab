import type { Middleware } from 'koa';
import { koaBody } from 'koa-body';
import { AppError } from './problem.js';
import { toAppError } from './error-handler.js';
import { assertStorable } from './storable-input.js';

/**
 * Runs `parser` (koa-body) with its failures turned into the client's: a body that cannot be read
 * or decoded (a Content-Encoding it does not match, a cut-off stream) is a 400, never a 500.
 * Errors from the routes after it pass through unchanged.
 */
export function readBody(parser: Middleware, check: (body: unknown) => void = () => {}): Middleware {
  return async (ctx, next) => {
    let read = false;
    try {
      await parser(ctx, async () => {
        read = true;
        check(ctx.request.body);
        await next();
      });
    } catch (err) {
      if (read) throw err;
      const known = toAppError(err);
      throw known.status < 500 ? known : new AppError('VALIDATION_FAILED', 'The request body could not be read (check its Content-Encoding).');
    }
  };
}

/**
 * Refuses a body whose Content-Type is none of `types` (koa-body's type names) with a 415, so that
 * it is not read as an empty one and answered with a misleading validation error. A request with
 * no body (no Content-Length or 0, no Transfer-Encoding) passes whatever its Content-Type.
 */
export function acceptBodyTypes(types: string[], hint: string): Middleware {
  return (ctx, next) => {
    const hasBody = ctx.get('transfer-encoding') !== '' || (ctx.request.length ?? 0) > 0;
    if (hasBody && !ctx.request.is(types)) throw new AppError('UNSUPPORTED_MEDIA_TYPE', hint);
    return next();
  };
}

const parse = koaBody({ json: false, text: false, multipart: false, urlencoded: true, formLimit: '16kb' }) as Middleware;

/** Small urlencoded bodies for our HTML forms, parsed per route (never in front of /o). */
export const formBody = (): Middleware => readBody(parse, assertStorable);
