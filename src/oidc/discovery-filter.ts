import type { Middleware } from 'koa';
import { HIDDEN_GRANTS } from './first-party-grants.js';

// The provider's two metadata documents: OpenID Connect Discovery's and RFC 8414's.
const DISCOVERY = ['/.well-known/openid-configuration', '/.well-known/oauth-authorization-server'];

/** Removes the first-party grants from discovery: third parties must not be told about them. */
export function hideFirstPartyGrants(): Middleware {
  // Not an async function: every other request passes straight through, without a promise of its own.
  return (ctx, next) => {
    if (!DISCOVERY.some((d) => ctx.path.endsWith(d))) return next();
    return next().then(() => {
      const body = ctx.body as { grant_types_supported?: string[] } | undefined;
      if (Array.isArray(body?.grant_types_supported)) {
        body.grant_types_supported = body.grant_types_supported.filter((g) => !HIDDEN_GRANTS.has(g));
      }
    });
  };
}
