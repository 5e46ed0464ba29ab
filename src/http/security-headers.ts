import type { IncomingMessage, ServerResponse } from 'node:http';
import helmet from 'helmet';
import type { Middleware } from 'koa';

/**
 * Helmet's headers for documents, with a strict CSP. `form-action` is deliberately left out: after
 * our login and consent forms post, the response redirects to the client's registered
 * redirect_uri, and browsers apply form-action to those redirects, which no static list could cover.
 */
const documentHeaders = helmet({
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

/**
 * JSON answers (tokens, introspection, userinfo, discovery, the API) are read by programs, never
 * rendered: they get the headers OWASP's REST Security Cheat Sheet lists for APIs, nothing that
 * only governs a document (referrer, opener, prefetching and the like). Fewer headers on the
 * hottest endpoints: measured here, the full set cost a tenth of introspection's throughput.
 */
const dataHeaders = helmet({
  contentSecurityPolicy: { useDefaults: false, directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] } },
  crossOriginOpenerPolicy: false,
  crossOriginResourcePolicy: false,
  originAgentCluster: false,
  referrerPolicy: false,
  xDnsPrefetchControl: false,
  xDownloadOptions: false,
  xPermittedCrossDomainPolicies: false,
  xXssProtection: false,
  xFrameOptions: { action: 'deny' },
});

type HeaderList = readonly (readonly [name: string, value: string])[];

/** What a helmet middleware sets, recorded once: its headers never depend on the request. */
function recorded(setHeaders: typeof documentHeaders): HeaderList {
  const headers: [string, string][] = [];
  const res = {
    setHeader: (name: string, value: string) => void headers.push([name, value]),
    removeHeader: () => {},
  } as unknown as ServerResponse;
  setHeaders({} as IncomingMessage, res, (err?: unknown) => {
    if (err) throw err;
  });
  return headers;
}

const DOCUMENT_HEADERS = recorded(documentHeaders);
const DATA_HEADERS = recorded(dataHeaders);

const isData = (type: string) => type === 'application/json' || type.endsWith('+json') || type === 'application/jwt' || type.endsWith('+jwt');

/**
 * Sets the security headers once the answer is known: the document set on anything that is not
 * JSON or a JWT (pages, errors rendered as pages, redirects, static files). Koa writes headers
 * only after the middleware chain returns, so setting them here reaches every answer. A header a
 * route set itself (the API docs' CSP, a token page's Referrer-Policy) is kept.
 */
export function securityHeaders(options: { documentsOnly?: (path: string) => boolean } = {}): Middleware {
  const setAll = (res: ServerResponse, headers: HeaderList) => {
    for (const [name, value] of headers) if (!res.hasHeader(name)) res.setHeader(name, value);
  };
  return async (ctx, next) => {
    // Paths that answer only with documents get the headers before the route runs: oidc-provider's
    // form_post answer adds its inline script's hash to a Content-Security-Policy it finds set.
    if (options.documentsOnly?.(ctx.path)) setAll(ctx.res, DOCUMENT_HEADERS);
    try {
      await next();
    } finally {
      if (!ctx.res.headersSent) setAll(ctx.res, isData(ctx.response.type) ? DATA_HEADERS : DOCUMENT_HEADERS);
    }
  };
}
