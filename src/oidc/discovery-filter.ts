import type { Middleware } from 'koa';
import { HIDDEN_GRANTS } from './first-party-grants.js';

/** Removes the first-party grants from discovery: third parties must not be told about them. */
export function hideFirstPartyGrants(): Middleware {
  // Not an async function: every other request passes straight through, without a promise of its own.
  return (ctx, next) => {
    if (!ctx.path.endsWith('/.well-known/openid-configuration')) return next();
    return next().then(() => {
      const body = ctx.body as { grant_types_supported?: string[] } | undefined;
      if (Array.isArray(body?.grant_types_supported)) {
        body.grant_types_supported = body.grant_types_supported.filter((g) => !HIDDEN_GRANTS.has(g));
      }
    });
  };
}
