import type { Middleware } from 'koa';
import type { Logger } from 'pino';
import { ZodError } from 'zod';
import { databaseUnavailable, recordNotFound } from '../db/errors.js';
import { AppError, serviceUnavailable, toProblem, type ErrorCode } from './problem.js';
import type { Views } from './views.js';

// What the lookup that a vanished row passed would answer now.
const NOT_FOUND_CODES: Record<string, ErrorCode> = { User: 'USER_NOT_FOUND', Client: 'CLIENT_NOT_FOUND', Connection: 'CONNECTION_NOT_FOUND' };

/** Turns a thrown error into an HTTP status a client can act on; only genuine faults are 500s. */
export function toAppError(err: unknown): AppError {
  if (err instanceof AppError) return err;
  if (err instanceof ZodError) {
    return new AppError('VALIDATION_FAILED', undefined, err.issues.map((i) => ({ path: i.path.join('.'), message: i.message })));
  }
  // Two deletes of one user, app or connection at once (a double-clicked button): both find it,
  // one deletes it, and the other's write finds nothing. It gets the 404 it would get a moment later.
  const vanished = recordNotFound(err);
  if (vanished) return new AppError(NOT_FOUND_CODES[vanished.model ?? ''] ?? 'NOT_FOUND');
  // http-errors thrown by co-body (see parseBody) and Koa itself (413, 415, 400 for malformed bodies).
  const status = (err as { status?: number; expose?: boolean }).status;
  if (status === 413) return new AppError('PAYLOAD_TOO_LARGE');
  if (status === 415) return new AppError('UNSUPPORTED_MEDIA_TYPE');
  if (status && status >= 400 && status < 500) return new AppError('VALIDATION_FAILED', (err as Error).message);
  if (databaseUnavailable(err)) return serviceUnavailable();
  return new AppError('INTERNAL');
}

/** Errors outside /o: problem+json for API callers, the error page for browsers. */
/** The page a form posted to `path` is opened on: the sign-in's own page, the account page, the console, or the same address. */
function formPage(path: string) {
  const signIn = /^\/interaction\/[^/]+/.exec(path)?.[0];
  if (signIn) return signIn;
  if (path.startsWith('/account/')) return '/account';
  if (path.startsWith('/admin/')) return '/admin';
  return path;
}

export function errorHandler(views: Views, logger: Logger): Middleware {
  return async (ctx, next) => {
    try {
      await next();
    } catch (err) {
      const appError = toAppError(err);
      if (appError.status >= 500) logger.error({ err, path: ctx.path }, 'request failed');
      ctx.status = appError.status;
      if (appError.retryAfter) ctx.set('retry-after', String(appError.retryAfter));
      if (ctx.path === '/api' || ctx.path.startsWith('/api/') || (!ctx.accepts('html') && ctx.accepts('json'))) {
        ctx.type = 'application/problem+json';
        ctx.body = toProblem(appError, ctx.path);
        return;
      }
      ctx.type = 'html';
      // Reloading would send the expired form again: link to where it can be opened afresh.
      const back = appError.code === 'CSRF_FAILED' && ctx.method === 'POST' ? formPage(ctx.path) : undefined;
      ctx.body = await views.render('error', { title: 'Error', heading: appError.title, message: appError.detail ?? appError.title, back });
    }
  };
}
