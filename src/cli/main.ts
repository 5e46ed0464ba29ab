import 'dotenv/config';
import { userInfo } from 'node:os';
import { Command, Option } from 'commander';
import pino from 'pino';
import { ZodError } from 'zod';
import { loadConfig } from '../config/env.js';
import { createPrisma, type Db } from '../db/prisma.js';
import type { AuditRow } from '../db/oidc-store.js';
import { migrate, pendingMigrations } from '../db/migrate.js';
import { createServices } from '../deps.js';
import { rotateSigningKeys } from '../keys/signing-keys.js';
import { createSettings, settingsDefaults } from '../settings/settings.service.js';
import { AppError } from '../http/problem.js';
import { assertPasswordAccepted } from '../passwords/password-policy.js';
import { readPassword } from './prompt.js';
import { createAudit } from '../audit/audit.service.js';

const program = new Command('latch').description('Manage a Latch identity provider (uses DATABASE_URL)');
const collect = (value: string, previous: string[] = []) => [...previous, value];

/** Who ran a command, as the audit log names the actor: the host's user, since the CLI has no sign-in. */
function cliActor() {
  try {
    return `cli:${userInfo().username}`;
  } catch {
    return 'cli'; // no entry in the host's user database (some containers)
  }
}

/**
 * The audit log for CLI changes, written through Prisma (the CLI opens no hot-path store). Only
 * failures are logged, to standard error, so that `--json` output stays parseable.
 */
function cliAudit(prisma: Db) {
  const store = {
    async insertAuditEvent({ detail, ...event }: AuditRow) {
      await prisma.auditEvent.create({ data: { ...event, ...(detail ? { detail } : {}) } });
    },
  };
  const record = createAudit(prisma, store, pino({ level: 'warn' }, pino.destination({ dest: 2, sync: true }))).record;
  const actorId = cliActor();
  return (event: Parameters<typeof record>[0], input: { userId?: string; detail?: object } = {}) => record(event, { ...input, actorId });
}

/** Opens the database (migrated), runs the command, closes it. */
async function withServices<T>(
  fn: (s: ReturnType<typeof createServices> & { prisma: Db; config: ReturnType<typeof loadConfig>; audit: ReturnType<typeof cliAudit> }) => Promise<T>,
) {
  const config = loadConfig();
  await migrate(config.db.url);
  const prisma = await createPrisma(config.db);
  try {
    return await fn({ ...createServices(config, prisma), prisma, config, audit: cliAudit(prisma) });
  } finally {
    await prisma.$disconnect();
  }
}

program
  .command('migrate')
  .description('apply pending database migrations (the server also does this at start)')
  .option('--status', 'only list pending migrations')
  .action(async (opts: { status?: boolean }) => {
    const { url } = loadConfig().db;
    if (opts.status) {
      const pending = await pendingMigrations(url);
      console.log(pending.length ? `pending: ${pending.join(', ')}` : 'up to date');
      return;
    }
    const applied = await migrate(url);
    console.log(applied.length ? `applied: ${applied.join(', ')}` : 'up to date');
  });

const users = program.command('users').description('manage users');
users
  .command('create')
  .description('create a user (with --admin, an administrator)')
  .requiredOption('--email <email>', 'email address (also a login name)')
  .option('--username <name>', 'optional login name')
  .option('--name <name>', 'full name')
  .option('--given-name <name>')
  .option('--family-name <name>')
  .option('--admin', 'administrator (also staff)')
  .option('--staff', 'staff member')
  .option('--developer', 'may register apps through /api/apps')
  .option('--password-stdin', 'read the password from standard input')
  .action(async (opts) => {
    const password = await readPassword(Boolean(opts.passwordStdin));
    // The same policy as registration and the admin API.
    await assertPasswordAccepted(password, [opts.email, opts.username, opts.name]);
    await withServices(async ({ users, audit }) => {
      const user = await users.create({
        email: opts.email,
        username: opts.username,
        name: opts.name,
        givenName: opts.givenName,
        familyName: opts.familyName,
        password,
        isAdmin: Boolean(opts.admin),
        isStaff: Boolean(opts.admin || opts.staff),
        emailVerified: true,
      });
      if (opts.developer) await users.grantDeveloper(user.id);
      await audit('admin.user_created', { userId: user.id });
      console.log(`created ${user.isAdmin ? 'admin ' : ''}user ${user.email} (id ${user.id})`);
    });
  });

const clients = program.command('clients').description('manage OIDC clients');
clients
  .command('create')
  .description('register a client; prints its client_id and, for confidential clients, its secret (shown once)')
  .requiredOption('--name <name>', 'name shown on the consent page')
  .option('--redirect-uri <uri>', 'allowed redirect URI (repeatable)', collect, [])
  .option('--post-logout-redirect-uri <uri>', 'allowed post-logout redirect URI (repeatable)', collect, [])
  .option('--public', 'public client (SPA, mobile, CLI): no secret, PKCE required')
  .option('--native', 'native app (RFC 8252): loopback redirect URIs match on any port; users allow it at every sign-in')
  .addOption(
    new Option('--grant-type <type>', 'allowed grant type (repeatable; default authorization_code and refresh_token)')
      .choices(['authorization_code', 'refresh_token', 'client_credentials', 'password'])
      .argParser(collect),
  )
  .option('--scope <scopes>', `space-separated scopes the client may request (default: all standard ones; ${'latch:admin'} lets its client-credentials tokens manage Latch)`)
  .option('--resource <url>', 'API resource the client may ask tokens for (repeatable; default: any)', collect, [])
  .option('--trusted', 'first-party client: users are not asked for consent')
  .option('--json', 'print JSON (for scripts)')
  .action(async (opts) => {
    await withServices(async ({ clients, audit }) => {
      const created = await clients.create({
        name: opts.name,
        redirectUris: opts.redirectUri,
        postLogoutRedirectUris: opts.postLogoutRedirectUri,
        public: Boolean(opts.public),
        native: Boolean(opts.native),
        grantTypes: opts.grantType,
        scopes: opts.scope ? String(opts.scope).split(' ').filter(Boolean) : [],
        resources: opts.resource,
        trusted: Boolean(opts.trusted),
      });
      await audit('admin.app_created', { detail: { clientId: created.clientId } });
      if (opts.json) {
        console.log(JSON.stringify({ client_id: created.clientId, client_secret: created.clientSecret ?? null }));
        return;
      }
      console.log(`client_id:     ${created.clientId}`);
      if (created.clientSecret) console.log(`client_secret: ${created.clientSecret}\n(store the secret now: it is not shown again)`);
    });
  });
clients
  .command('list')
  .description('list clients')
  .option('--json', 'print JSON')
  .action(async (opts) => {
    await withServices(async ({ clients }) => {
      const list = await clients.list();
      if (opts.json) return console.log(JSON.stringify(list, null, 2));
      if (!list.length) return console.log('no clients yet: latch clients create --help');
      for (const c of list) {
        const kind = [c.public ? 'public' : 'confidential', c.trusted ? 'trusted' : ''].filter(Boolean).join(', ');
        console.log(`${c.clientId}  ${c.name}  (${kind})  ${c.grantTypes.join(' ')}  ${c.redirectUris.join(' ')}`);
      }
    });
  });

const resources = program.command('resources').description('manage API resources (audiences of JWT access tokens)');
resources
  .command('create')
  .description('register an API: tokens requested with resource=<indicator> are JWTs for it')
  .requiredOption('--indicator <url>', 'resource indicator, e.g. https://api.example.com')
  .requiredOption('--name <name>', 'name shown on the consent page')
  .option('--scope <scope>', 'scope the API accepts (repeatable)', collect, [])
  .option('--access-token-ttl <seconds>', 'access token lifetime for this API', (v) => Number.parseInt(v, 10))
  .addOption(new Option('--alg <alg>', 'signing algorithm').choices(['ES256', 'RS256']).default('ES256'))
  .action(async (opts) => {
    await withServices(async ({ resources, audit }) => {
      await resources.create({ indicator: opts.indicator, name: opts.name, scopes: opts.scope, accessTokenTtl: opts.accessTokenTtl, signingAlg: opts.alg });
      await audit('admin.api_resource_created', { detail: { indicator: opts.indicator } });
      console.log(`registered ${opts.indicator}`);
    });
  });

const keys = program.command('keys').description('manage signing keys');
keys
  .command('rotate')
  .description('add new current signing keys; old keys stay published until tokens they signed expire')
  .action(async () => {
    await withServices(async ({ prisma, config, resources, audit }) => {
      // The longest lifetime of anything the old keys signed: ID and access tokens as the runtime
      // settings have them now (an admin may have raised them), client-credentials tokens, and
      // the access tokens of APIs with a lifetime of their own.
      const settings = await createSettings(prisma, settingsDefaults(config)).get();
      const apis = await resources.list();
      const keepFor = Math.max(settings.idTokenTtl, settings.accessTokenTtl, config.oidc.ttl.clientCredentials, ...apis.map((api) => api.accessTokenTtl ?? 0));
      const { kids, activatesAt, oldKeysRetireAt } = await rotateSigningKeys(prisma, keepFor, config.keyRefreshSeconds);
      await audit('admin.signing_keys_rotated', { detail: { kids, activatesAt, oldKeysRetireAt } });
      console.log(`new signing keys: ${kids.join(', ')}`);
      console.log(`running servers publish them within KEY_REFRESH_INTERVAL (${config.keyRefreshSeconds} s) and sign with them from ${activatesAt.toISOString()} (each at its first check after that, within ${config.keyRefreshSeconds} s)`);
      console.log(`previous keys stay published until ${oldKeysRetireAt.toISOString()}`);
    });
  });

program.parseAsync().catch((err: unknown) => {
  if (err instanceof ZodError) {
    console.error(`latch: invalid input:\n${err.issues.map((i) => `  ${i.path.join('.') || 'value'}: ${i.message}`).join('\n')}`);
  } else if (err instanceof AppError) {
    console.error(`latch: ${err.message}`);
  } else {
    console.error(`latch: ${(err as Error).message}`);
  }
  process.exitCode = 1;
});
