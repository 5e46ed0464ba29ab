import Provider, { errors, type Configuration } from 'oidc-provider';
import type { Logger } from 'pino';
import type { Config } from '../config/env.js';
import type { CookieKeyRing } from '../keys/cookie-keys.js';
import type { Db } from '../db/prisma.js';
import type { Views } from '../http/views.js';
import type { UsersService } from '../users/users.service.js';
import type { ApiResourcesService } from '../resources/api-resources.service.js';
import type { AccountFlows } from '../accounts/account-flows.js';
import type { Authenticate } from '../auth/authenticate.js';
import type { Audit } from '../audit/audit.service.js';
import type { SettingsService } from '../settings/settings.service.js';
import type { Metrics } from '../metrics/metrics.js';
import { clientSecretMatches } from '../clients/client-secret.js';
import { createOidcAdapter, type ClientCache } from './adapter.js';
import type { AccountCache } from './account-cache.js';
import type { OidcStore } from '../db/oidc-store.js';
import { createFindAccount } from './account.js';
import { baseConfiguration } from './configuration.js';
import { loadExistingGrant } from './grants.js';
import { createPageRenderers } from './pages.js';
import { forwardEvents } from './events.js';
import { registerFirstPartyGrants } from './first-party-grants.js';
import { reuseClientInstances } from './client-instances.js';
import type { UnitOfWork } from '../db/unit-of-work.js';

export type ProviderDeps = {
  config: Config;
  prisma: Db;
  oidcStore: OidcStore;
  clientCache: ClientCache;
  accountCache: AccountCache;
  users: UsersService;
  resources: ApiResourcesService;
  views: Views;
  logger: Logger;
  jwks: { keys: object[] };
  cookieKeys: CookieKeyRing;
  accounts: AccountFlows;
  authenticate: Authenticate;
  audit: Audit;
  settings: SettingsService;
  metrics: Metrics;
  unitOfWork: Pick<UnitOfWork, 'onFailure'>;
};

export function createProvider(deps: ProviderDeps): Provider {
  const { config, resources } = deps;
  const base = baseConfiguration(config, deps.cookieKeys, deps.settings.snapshot);
  const pages = createPageRenderers(deps.views, deps.logger);
  const findAccount = createFindAccount(deps.accountCache);

  const configuration: Configuration = {
    ...base,
    adapter: createOidcAdapter(deps.oidcStore, deps.clientCache, config.consumedTokenRetentionSeconds),
    jwks: deps.jwks as Configuration['jwks'],
    findAccount,
    loadExistingGrant,
    renderError: pages.renderError,
    features: {
      ...base.features,
      rpInitiatedLogout: {
        enabled: true,
        logoutSource: pages.logoutSource,
        postLogoutSuccessSource: pages.postLogoutSuccessSource,
      },
      // JWT access tokens (RFC 9068) for registered APIs; opaque tokens for everything else.
      resourceIndicators: {
        enabled: true,
        defaultResource: async (_ctx, _client, oneOf) => oneOf,
        useGrantedResource: async () => true,
        async getResourceServerInfo(_ctx, indicator, client) {
          const api = await resources.find(indicator);
          if (!api) throw new errors.InvalidTarget(`resource ${indicator} is not registered`);
          // Extra metadata keeps its snake_case name on the client (only recognized keys are camelCased).
          const allowed = (client as { allowed_resources?: string[] }).allowed_resources ?? [];
          if (allowed.length && !allowed.includes(indicator)) throw new errors.InvalidTarget(`client may not request tokens for ${indicator}`);
          return {
            audience: api.indicator,
            scope: api.scopes.join(' '),
            ...(api.accessTokenTtl ? { accessTokenTTL: api.accessTokenTtl } : {}),
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: api.signingAlg as 'ES256' } },
          };
        },
      },
    },
  };

  const provider = new Provider(config.oidc.issuer, configuration);
  provider.proxy = config.http.trustProxy;
  provider.maxIpsCount = config.http.proxyHops;
  // Client secrets are stored as SHA-256 digests (src/clients/client-secret.ts); compare digests.
  provider.Client.prototype.compareClientSecret = function compareClientSecret(actual: string) {
    return clientSecretMatches(this.clientSecret, actual);
  };
  reuseClientInstances(provider, deps.clientCache);
  registerFirstPartyGrants(provider, { authenticate: deps.authenticate, accounts: deps.accounts, findAccount, settings: deps.settings.snapshot, onFailure: deps.unitOfWork.onFailure });
  forwardEvents(provider, deps.logger, deps.audit);
  provider.on('grant.success', (ctx) => deps.metrics.tokenIssued(String(ctx.oidc.params?.grant_type ?? 'unknown')));
  return provider;
}
