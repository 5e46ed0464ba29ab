import type { Middleware } from 'koa';
import coBody from 'co-body';
import { AppError } from './problem.js';
import { toAppError } from './error-handler.js';
import { assertStorable } from './storable-input.js';

declare module 'koa' {
  interface Request {
    /** The body parseBody read, for the routes behind it to validate; undefined where none was read. */
    body?: unknown;
  }
}

export type BodyOptions = {
  /** Content types read as JSON (type-is names); none: JSON is not read. */
  jsonTypes?: string[];
  jsonLimit?: string;
  /** urlencoded forms are read up to this size. */
  formLimit: string;
  /** The methods whose bodies are read. */
  methods?: string[];
};

/**
 * Reads a JSON or urlencoded body into `ctx.request.body` with co-body (the parser under
 * koa-bodyparser and koa-body), within the limits; other content types are left unread.
 * co-body's failures are http-errors (400, 413, 415), which toAppError maps.
 */
export function parseBody({ jsonTypes, jsonLimit, formLimit, methods = ['POST', 'PUT', 'PATCH'] }: BodyOptions): Middleware {
  return async (ctx, next) => {
    if (methods.includes(ctx.method)) {
      if (jsonTypes && ctx.is(jsonTypes)) ctx.request.body = await coBody.json(ctx, { limit: jsonLimit, strict: true });
      else if (ctx.is('urlencoded')) ctx.request.body = await coBody.form(ctx, { limit: formLimit });
    }
    return next();
  };
}

/**
 * Runs `parser` (parseBody) with its failures turned into the client's: a body that cannot be read
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
 * Refuses a body whose Content-Type is none of `types` (type-is names) with a 415, so that
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

const parse = parseBody({ formLimit: '16kb' });

/** Small urlencoded bodies for our HTML forms, parsed per route (never in front of /o). */
export const formBody = (): Middleware => readBody(parse, assertStorable);
