import type { Middleware } from 'koa';
import type { Logger } from 'pino';
import { ZodError } from 'zod';
import { AppError, toProblem } from './problem.js';
import type { Views } from './views.js';

/** Turns a thrown error into an HTTP status a client can act on; only genuine faults are 500s. */
export function toAppError(err: unknown): AppError {
  if (err instanceof AppError) return err;
  if (err instanceof ZodError) {
    return new AppError('VALIDATION_FAILED', undefined, err.issues.map((i) => ({ path: i.path.join('.'), message: i.message })));
  }
  // http-errors thrown by koa-body and Koa itself (413, 415, 400 for malformed bodies).
  const status = (err as { status?: number; expose?: boolean }).status;
  if (status === 413) return new AppError('PAYLOAD_TOO_LARGE');
  if (status === 415) return new AppError('UNSUPPORTED_MEDIA_TYPE');
  if (status && status >= 400 && status < 500) return new AppError('VALIDATION_FAILED', (err as Error).message);
  return new AppError('INTERNAL');
}

/** Errors outside /o: problem+json for API callers, the error page for browsers. */
export function errorHandler(views: Views, logger: Logger): Middleware {
  return async (ctx, next) => {
    try {
      await next();
    } catch (err) {
      const appError = toAppError(err);
      if (appError.status >= 500) logger.error({ err, path: ctx.path }, 'request failed');
      ctx.status = appError.status;
      if (appError.retryAfter) ctx.set('retry-after', String(appError.retryAfter));
      if (ctx.path.startsWith('/api/') || (!ctx.accepts('html') && ctx.accepts('json'))) {
        ctx.type = 'application/problem+json';
        ctx.body = toProblem(appError, ctx.path);
        return;
      }
      ctx.type = 'html';
      ctx.body = await views.render('error', { title: 'Error', heading: appError.title, message: appError.detail ?? appError.title });
    }
  };
}
