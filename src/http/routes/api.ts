import type Provider from 'oidc-provider';
import type { Deps } from '../../deps.js';
import type { TokenBridge } from '../../oidc/token-bridge.js';
import { createApiRegistry } from '../api-routes.js';
import { buildOpenApiDocument } from '../openapi.js';
import { requirePrincipal, requireRole } from '../require-principal.js';
import { isAdmin, isDeveloper, isStaff } from '../../auth/principal.js';
import { defineAdminApi } from './admin-api.js';
import { defineAppsApi } from './apps-api.js';
import { defineAuthApi } from './auth-api.js';
import { defineMeApi } from './me-api.js';
import { defineStatusApi } from './status-api.js';
import { defineUsersApi } from './users-api.js';
import { defineAppConnectionsApi, defineConnectionsApi } from './connections-api.js';
import { createAppConnections } from '../../federation/app-connections.js';

/** Every /api route on one registry, and the OpenAPI document generated from it. */
export function createApi(deps: Deps, provider: Provider, callProvider: TokenBridge) {
  const api = createApiRegistry();
  const principalDeps = { provider, users: deps.users, apiKeys: deps.apiKeys };
  const anyPrincipal = requirePrincipal(principalDeps);
  defineAuthApi(api, { ...deps, provider, callProvider });
  defineMeApi(api, { ...deps, requireUser: requirePrincipal(principalDeps, { usersOnly: true }) });
  // Roles are checked before a request body is validated: a caller without them learns nothing.
  defineUsersApi(api, { ...deps, guard: [anyPrincipal, requireRole(isStaff, 'Staff and admins only.')] });
  defineAppsApi(api, {
    ...deps,
    guard: [anyPrincipal],
    mayCreate: requireRole((p) => p.kind !== 'apiKey' && isDeveloper(p), 'Only developers and admins may create apps.'),
  });
  defineAppConnectionsApi(api, { appConnections: createAppConnections({ ...deps, publicUrl: deps.config.http.publicUrl }), guard: [anyPrincipal] });
  defineAdminApi(api, { ...deps, guard: [anyPrincipal, requireRole(isAdmin, 'Admins only.')] });
  defineConnectionsApi(api, { ...deps, publicUrl: deps.config.http.publicUrl, guard: [anyPrincipal, requireRole(isAdmin, 'Admins only.')] });
  defineStatusApi(api, { status: deps.config.ops.status, startedAt: deps.startedAt });

  let document: object | undefined;
  const openApiDocument = () =>
    (document ??= buildOpenApiDocument(api.routes, { title: `${deps.config.product.name} API`, version: '1', serverUrl: deps.config.http.publicUrl, serviceTokenHeader: deps.config.ops.status.header }));
  return { routes: api.middleware(), registered: api.routes, openApiDocument };
}
