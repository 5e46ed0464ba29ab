import Koa from 'koa';
import mount from 'koa-mount';
import compose from 'koa-compose';
import type Provider from 'oidc-provider';
import type { Deps } from './deps.js';
import { providerOf } from './db/url.js';
import { AppError } from './http/problem.js';
import { createProvider } from './oidc/provider.js';
import { interactionRoutes } from './oidc/interactions.js';
import { hideFirstPartyGrants } from './oidc/discovery-filter.js';
import { createTokenBridge } from './oidc/token-bridge.js';
import { createPreauthenticatedLogin } from './oidc/preauthenticated-login.js';
import { requestTelemetry } from './http/request-telemetry.js';
import { securityHeaders } from './http/security-headers.js';
import { servePublicOrigin } from './http/public-origin.js';
import { errorHandler } from './http/error-handler.js';
import { csrfProtection } from './http/csrf.js';
import { acceptBodyTypes, parseBody, readBody } from './http/form-body.js';
import { rejectNulInUrl } from './http/storable-input.js';
import { staticRoutes } from './http/routes/static.js';
import { healthRoutes } from './http/routes/health.js';
import { opsRoutes } from './http/routes/ops.js';
import { publicPageRoutes } from './http/routes/public-pages.js';
import { accountPageRoutes } from './http/routes/account-pages.js';
import { adminPageRoutes } from './http/routes/admin-pages.js';
import { createApi } from './http/routes/api.js';
import { federationPageRoutes } from './http/routes/federation-pages.js';
import { createFederatedLogin } from './federation/federated-login.js';
import { oauthFailures } from './oidc/unavailable.js';

/** The map of the system: every middleware and mount, in order. */
export function createApp(deps: Deps) {
  const { config } = deps;
  const provider = createProvider(deps);
  const app = new Koa({ proxy: config.http.trustProxy, maxIpsCount: config.http.proxyHops });
  app.keys = deps.cookieKeys;
  servePublicOrigin(app, config.http.publicUrl);
  const csrf = csrfProtection({ publicOrigin: new URL(config.http.publicUrl).origin, secure: config.http.secureCookies });
  // The provider is rebuilt when the signing keys change (see reloadKeys): requests always reach
  // the current one. Other routes may keep the first instance: they never sign.
  let mounted = mount('/o', provider);
  const oidc: Koa.Middleware = (ctx, next) => mounted(ctx, next);
  const preauth = createPreauthenticatedLogin(provider, { secure: config.http.secureCookies, accountLoginPath: '/account/login' });
  const federatedLogin = createFederatedLogin({ ...deps, preauth, publicUrl: config.http.publicUrl, secure: config.http.secureCookies });
  // A unit of work as at /o: the tokens a first-party call is given are stored together, and a
  // call that fails gives back the refresh token it consumed.
  const api = createApi(deps, provider, createTokenBridge(compose<Koa.Context>([deps.unitOfWork.middleware, oidc] as Koa.Middleware[])));
  // JSON API bodies (and forms, as OAuth2 password forms send them); parsed only under /api.
  // DELETE too, for one route only: deleting one's own account carries the current password.
  const bodyMethods = ['POST', 'PUT', 'PATCH', 'DELETE'];
  const jsonTypes = ['json', '+json'];
  const acceptApiBody = acceptBodyTypes([...jsonTypes, 'urlencoded'], 'Send the body as application/json.');
  const apiBody = compose<Koa.Context>([
    (ctx, next) => (bodyMethods.includes(ctx.method) ? acceptApiBody(ctx, next) : next()),
    readBody(parseBody({ jsonTypes, jsonLimit: '64kb', formLimit: '64kb', methods: bodyMethods })),
  ]);

  // Everything but the OpenID provider: pages, API, ops. /o requests never walk these routers.
  const site = compose<Koa.Context>([
    staticRoutes(),
    healthRoutes(deps.prisma, providerOf(config.db.url)),
    opsRoutes({ ...config.ops, metrics: deps.metrics, openApiDocument: api.openApiDocument }),
    (ctx, next) => (ctx.path.startsWith('/interaction/') ? deps.unitOfWork.middleware(ctx, next) : next()),
    interactionRoutes({ provider, csrf, preauth, federatedLogin, ...deps }),
    federationPageRoutes({ ...deps, provider, csrf, preauth, federatedLogin }),
    publicPageRoutes({ ...deps, csrf, preauth, federatedLogin }),
    accountPageRoutes({ ...deps, csrf, provider }),
    adminPageRoutes({ ...deps, csrf, provider }),
    async (ctx, next) => (ctx.path.startsWith('/api/') && (ctx.method !== 'DELETE' || ctx.path === '/api/me') ? apiBody(ctx, next) : next()),
    api.routes,
    // Nothing answered: a page in the site's layout (the error handler's), not Koa's bare text.
    () => {
      throw new AppError('NOT_FOUND', 'There is no page at this address.');
    },
  ] as Koa.Middleware[]);
  // The provider parses its own bodies: nothing before it may read request bodies of /o. Its
  // writes of one request, and those of the interaction pages, are applied together at the end.
  // The authorization and end-session endpoints answer with redirects and pages only, some of
  // them with an inline script (form_post, a sign-out without a session) whose hash the provider
  // adds to the policy it finds set.
  const documentsOnly = (path: string) => path === '/o/auth' || path.startsWith('/o/auth/') || path === '/o/session/end' || path.startsWith('/o/session/end/');
  const openIdProvider = compose<Koa.Context>([oauthFailures(deps.logger, documentsOnly), deps.unitOfWork.middleware, hideFirstPartyGrants(), oidc] as Koa.Middleware[]);

  app.use(requestTelemetry(deps.logger, deps.metrics));
  app.use(securityHeaders({ documentsOnly }));
  app.use(errorHandler(deps.views, deps.logger));
  app.use(rejectNulInUrl());
  app.use((ctx, next) => {
    // RFC 8414 clients look for an issuer's metadata at /.well-known/oauth-authorization-server
    // followed by the issuer's path: serve the provider's document there too.
    if (ctx.path === '/.well-known/oauth-authorization-server/o') ctx.path = '/o/.well-known/oauth-authorization-server';
    return ctx.path.startsWith('/o/') ? openIdProvider(ctx, next) : site(ctx, next);
  });
  /** Publishes a new key set without a restart: a provider built with it takes over /o. */
  function reloadKeys(jwks: Deps['jwks']) {
    mounted = mount('/o', createProvider({ ...deps, jwks }));
  }
  return { app, provider: provider as Provider, api, reloadKeys };
}
