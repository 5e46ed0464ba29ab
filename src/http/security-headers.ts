import helmet from 'helmet';
import type { Middleware } from 'koa';

/**
 * Helmet's headers with a strict CSP. `form-action` is deliberately left out: after our login and
 * consent forms post, the response redirects to the client's registered redirect_uri, and
 * browsers apply form-action to those redirects, which no static list could cover.
 */
export function securityHeaders(): Middleware {
  const setHeaders = helmet({
    contentSecurityPolicy: {
      useDefaults: false,
      directives: {
        defaultSrc: ["'self'"],
        scriptSrc: ["'self'"],
        styleSrc: ["'self'"],
        imgSrc: ["'self'", 'data:'],
        fontSrc: ["'self'"],
        objectSrc: ["'none'"],
        baseUri: ["'none'"],
        frameAncestors: ["'none'"],
      },
    },
    // same-origin, not no-referrer: under no-referrer Chromium sends `Origin: null` on our own form
    // posts, which the CSRF check must refuse. Other sites still get no Referer.
    referrerPolicy: { policy: 'same-origin' },
    // Relying parties fetch discovery and JWKS from other origins.
    crossOriginResourcePolicy: { policy: 'cross-origin' },
  });
  // Helmet only sets headers, synchronously: call it in place rather than through a promise.
  return (ctx, next) => {
    let failure: unknown;
    setHeaders(ctx.req, ctx.res, (err?: unknown) => void (failure = err));
    if (failure) throw failure;
    return next();
  };
}
