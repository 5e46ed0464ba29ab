import type { Middleware } from 'koa';
import { findUnstorable, NUL } from '../db/storable.js';
import { AppError } from './problem.js';

/** Throws a 400 naming the field when parsed input could not be stored (see findUnstorable). */
export function assertStorable(value: unknown) {
  const problem = findUnstorable(value);
  if (problem) throw new AppError('VALIDATION_FAILED', `${problem.message}.`, [problem]);
}

/**
 * NUL characters are never valid in Latch's input and PostgreSQL cannot store them. In a URL path
 * nothing can match (404); in the query of a page or of /o (an authorization request sent as a
 * link, say), 400. (API routes check their query and body field by field; what /o takes in a body
 * is checked when the provider stores it, see oidc/adapter.ts.)
 */
export function rejectNulInUrl(): Middleware {
  return (ctx, next) => {
    // Only an escaped path can hold a NUL (Node refuses a raw one in the request line).
    if (ctx.path.includes('%')) {
      let path: string;
      try {
        path = decodeURIComponent(ctx.path);
      } catch {
        throw new AppError('NOT_FOUND');
      }
      if (path.includes(NUL)) throw new AppError('NOT_FOUND');
    }
    if (!ctx.path.startsWith('/api/')) assertStorable(ctx.query);
    return next();
  };
}
