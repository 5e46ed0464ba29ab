import pino, { type Logger } from 'pino';
import { ConfigError, type Config } from './config/env.js';
import { createPrisma, type Db } from './db/prisma.js';
import { migrate } from './db/migrate.js';
import { providerOf } from './db/url.js';
import { withLock } from './db/lock.js';
import { createPasswordHasher } from './passwords/passwords.js';
import { checkPassword } from './passwords/password-policy.js';
import { createUsersService } from './users/users.service.js';
import { createClientsService } from './clients/clients.service.js';
import { createApiResourcesService } from './resources/api-resources.service.js';
import { createLoginThrottle } from './auth/login-throttle.js';
import { createEmailThrottle } from './auth/email-throttle.js';
import { createAuthenticator } from './auth/authenticate.js';
import { createAudit } from './audit/audit.service.js';
import { createOneTimeTokens } from './tokens/one-time-tokens.js';
import { createMailer, type Mailer } from './mail/mailer.js';
import { createMailQueue } from './mail/mail-queue.js';
import { createAccountFlows } from './accounts/account-flows.js';
import { ensureSigningKeys, loadSigningJwks } from './keys/signing-keys.js';
import { cookieEncryptionKeys, cookieKeyRing, loadCookieKeys } from './keys/cookie-keys.js';
import { ensureFirstPartyClients } from './oidc/first-party-clients.js';
import { createViews } from './http/views.js';
import { createOneTimeSecrets } from './http/one-time-secrets.js';
import { createOidcStore, type OidcStore } from './db/oidc-store.js';
import { createUnitOfWork, createWorkGauge } from './db/unit-of-work.js';
import { createAccountCache } from './oidc/account-cache.js';
import { invalidateOnWrite } from './db/invalidate-on-write.js';
import { cacheTokenReads } from './db/token-cache.js';
import { createClientCache } from './oidc/adapter.js';
import { createSettings, settingsDefaults } from './settings/settings.service.js';
import { createMetrics } from './metrics/metrics.js';
import { createApiKeysService } from './clients/api-keys.service.js';
import { createApps } from './clients/apps.service.js';
import { createSessionsService } from './auth/sessions.service.js';
import { createUsersAdmin } from './users/users-admin.service.js';
import { createSecretBox } from './federation/secret-box.js';
import { createConnectionsService } from './federation/connections.service.js';
import { createFederatedAccounts } from './federation/federated-accounts.js';
import { createUpstream } from './federation/upstream.js';

export function createLogger(config: Config): Logger {
  return pino({
    level: config.log.level,
    redact: ['req.headers.authorization', 'req.headers.cookie', '*.password', '*.token', '*.client_secret'],
  });
}

/** Domain services over one database; shared by the server and the CLI. */
export function createServices(config: Config, prisma: Db, onClientChange?: (clientId: string) => void) {
  const hasher = createPasswordHasher(config.argon2, config.argon2MaxConcurrency);
  const users = createUsersService(prisma, hasher);
  return {
    hasher,
    users,
    clients: createClientsService(prisma, onClientChange),
    resources: createApiResourcesService(prisma),
  };
}

/** Everything the server needs, built once: the only place (with main.ts) that creates clients. */
export type DepsOptions = {
  /** Another mail transport (the default is SMTP_URL or the outbox folder). */
  mailer?: Mailer;
  /** Wrap the database client and the provider's store, e.g. to count queries in benchmarks. */
  instrumentDb?: (db: Db) => Db;
  instrumentStore?: (store: OidcStore) => OidcStore;
};

export async function createDeps(config: Config, logger: Logger = createLogger(config), options: DepsOptions = {}) {
  const applied = await migrate(config.db.url);
  if (applied.length) logger.info({ migrations: applied }, 'applied database migrations');
  const provider = providerOf(config.db.url);
  const gauge = createWorkGauge();
  const store = await createOidcStore(provider, config.db.url, {
    poolSize: config.db.poolSize,
    commitWindowMs: config.db.commitWindowMs,
    othersAtWork: gauge.othersAtWork,
    asyncTokenCommit: config.db.asyncTokenCommit,
    timeoutSeconds: config.db.timeoutSeconds,
    // The error alone: pg passes the whole client, whose internals fill kilobytes of a log line.
    onError: (err) => logger.warn({ err: { message: err.message, code: (err as { code?: string }).code } }, 'a background database connection failed; it will be replaced'),
  });
  const rawStore = (options.instrumentStore ?? ((s) => s))(store);
  const tokenCache = cacheTokenReads(rawStore);
  const unitOfWork = createUnitOfWork(tokenCache.store, gauge);
  const oidcStore = unitOfWork.store;
  const clientCache = createClientCache(oidcStore);
  const accountCache = createAccountCache(oidcStore);
  const prisma = invalidateOnWrite((options.instrumentDb ?? ((db) => db))(await createPrisma(config.db)), {
    user: (id) => accountCache.invalidate(id),
    oidcPayload: tokenCache.clear,
  });
  const services = createServices(config, prisma, clientCache.invalidate);

  // First start: keys and the bootstrap admin, created once even when processes start together.
  const cookieKeyValues = await withLock(prisma, provider, 'startup', async (tx) => {
    const created = await ensureSigningKeys(tx);
    if (created) logger.info({ keys: created }, 'generated signing keys');
    if (config.bootstrapAdmin && !(await tx.user.findFirst({ where: { isAdmin: true } }))) {
      const weak = await checkPassword(config.bootstrapAdmin.password, [config.bootstrapAdmin.email]);
      if (weak) throw new ConfigError(`Invalid environment:\n  ADMIN_PASSWORD: ${weak}`);
      await createServices(config, tx).users.create({ ...config.bootstrapAdmin, isAdmin: true, isStaff: true, emailVerified: true });
      logger.info({ email: config.bootstrapAdmin.email }, 'created admin user from ADMIN_EMAIL');
    }
    await ensureFirstPartyClients(tx, config.http.publicUrl, config.product.name);
    return loadCookieKeys(tx, config.oidc.cookieKeys);
  });
  const cookieKeys = cookieKeyRing(cookieKeyValues);
  const { jwks, version: jwksVersion } = await loadSigningJwks(prisma, config.keyRefreshSeconds);

  const settings = createSettings(prisma, settingsDefaults(config));
  await settings.init();
  const metrics = createMetrics({ inCluster: config.http.workers > 1 });
  const audit = createAudit(prisma, rawStore, logger);
  const apiKeys = createApiKeysService(prisma, provider);
  const tokens = createOneTimeTokens(prisma, provider);
  const mail = createMailQueue(prisma, options.mailer ?? createMailer(config.mail, logger), logger);
  const loginThrottle = createLoginThrottle(rawStore, () => {
    const s = settings.snapshot();
    return { maxFailuresPerAccount: s.loginMaxFailuresPerAccount, maxFailuresPerIp: s.loginMaxFailuresPerIp, windowSeconds: s.loginThrottleWindow };
  });
  const accounts = createAccountFlows({
    prisma,
    provider,
    users: services.users,
    hasher: services.hasher,
    tokens,
    mail,
    audit,
    emailThrottle: createEmailThrottle(prisma, config.emailThrottle),
    publicUrl: config.http.publicUrl,
    product: config.product,
    ttl: config.accounts.ttl,
    logger,
    loginThrottle,
  });
  const authenticate = createAuthenticator({
    store: rawStore,
    hasher: services.hasher,
    throttle: loginThrottle,
    audit,
    allowUnverifiedLogin: () => settings.snapshot().allowUnverifiedLogin,
    onResult: metrics.login,
  });

  const connections = createConnectionsService(prisma, createSecretBox(config.connections.secretKeys));
  const federated = createFederatedAccounts({
    prisma,
    users: services.users,
    audit,
    registrationOpen: () => settings.snapshot().registrationOpen,
    allowUnverifiedLogin: () => settings.snapshot().allowUnverifiedLogin,
  });

  return {
    config,
    logger,
    prisma,
    oidcStore,
    unitOfWork,
    accountCache,
    clientCache,
    ...services,
    jwks,
    jwksVersion,
    cookieKeys,
    audit,
    tokens,
    mail,
    accounts,
    authenticate,
    settings,
    metrics,
    apiKeys,
    apps: createApps({ clients: services.clients, apiKeys, audit }),
    connections,
    federated,
    upstream: createUpstream({ connections, timeoutSeconds: config.connections.upstreamTimeoutSeconds }),
    sessions: createSessionsService(prisma, audit),
    usersAdmin: createUsersAdmin({ prisma, provider, users: services.users, audit, tokens }),
    oneTimeSecrets: createOneTimeSecrets({ box: createSecretBox(cookieEncryptionKeys(cookieKeyValues, 'console one-time secrets')), tokens, secure: config.http.secureCookies }),
    startedAt: new Date(),
    views: createViews({ cache: config.env !== 'development', productName: config.product.name }),
  };
}

export type Deps = Awaited<ReturnType<typeof createDeps>>;
