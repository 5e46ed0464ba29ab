import addressparser from 'nodemailer/lib/addressparser';
import { z } from 'zod';

// Every setting Latch reads from the environment. process.env is read here only.
const seconds = (fallback: number) => z.coerce.number().int().min(1).default(fallback);

/** Every environment variable Latch reads (.env.example and the README list them). */
export const Env = z.object({
  NODE_ENV: z.enum(['development', 'test', 'production']).default('development'),
  HOST: z.string().min(1).default('0.0.0.0'),
  PORT: z.coerce.number().int().min(0).max(65535).default(3000),
  WORKERS: z.coerce.number().int().min(1).max(64).default(1),
  // Latch serves at the root of its host: /o, /account, /api. A path here would name URLs it never serves.
  PUBLIC_URL: z
    .url({ protocol: /^https?$/ })
    .refine((u) => { const url = new URL(u); return url.pathname === '/' && !url.search && !url.hash; }, 'scheme, host and port only (no path, query or fragment): Latch serves at the root of its host')
    .optional(),
  DATABASE_URL: z
    .string()
    .regex(/^(file:|postgres(ql)?:\/\/)/, 'must start with file: (SQLite) or postgres:// (PostgreSQL)')
    .default('file:./data/latch.db'),
  DATABASE_POOL_SIZE: z.coerce.number().int().min(1).max(200).default(10),
  DATABASE_COMMIT_WINDOW_MS: z.coerce.number().int().min(0).max(50).default(3),
  DATABASE_TIMEOUT: z.coerce.number().int().min(0).max(600).default(10),
  DATABASE_ASYNC_TOKEN_COMMIT: z.stringbool().default(true),
  COOKIE_KEYS: z
    .string()
    .transform((s) => s.split(',').map((k) => k.trim()).filter(Boolean))
    .refine((keys) => keys.every((k) => k.length >= 32), 'each key must be at least 32 characters')
    .optional(),
  // 32-byte keys (base64 or base64url), comma-separated, newest first: encrypt upstream client secrets.
  CONNECTION_SECRET_KEYS: z
    .string()
    .transform((s) => s.split(',').map((k) => k.trim()).filter(Boolean))
    .refine((keys) => keys.length > 0 && keys.every((k) => Buffer.from(k, 'base64').length === 32), 'each key must be 32 bytes, base64-encoded (openssl rand -base64 32)')
    .optional(),
  // How long one request to an upstream login provider may take before its sign-in fails.
  UPSTREAM_TIMEOUT: seconds(10).pipe(z.number().min(1).max(120)),
  // false, true (one proxy in front), or how many proxies in front append to X-Forwarded-For.
  TRUST_PROXY: z.union([z.stringbool().transform((on) => (on ? 1 : 0)), z.coerce.number().int().min(0).max(10)]).default(0),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  // The defaults of runtime settings: the same ranges as an admin may set them to.
  ACCESS_TOKEN_TTL: seconds(600).pipe(z.number().min(30).max(24 * 3600)),
  ID_TOKEN_TTL: seconds(3600).pipe(z.number().min(30).max(24 * 3600)),
  REFRESH_TOKEN_TTL: seconds(30 * 24 * 3600).pipe(z.number().min(30).max(365 * 24 * 3600)),
  AUTHORIZATION_CODE_TTL: seconds(60),
  CLIENT_CREDENTIALS_TTL: seconds(600),
  SESSION_TTL: seconds(14 * 24 * 3600),
  INTERACTION_TTL: seconds(3600),
  GRANT_TTL: seconds(365 * 24 * 3600),
  ARGON2_MEMORY_KIB: z.coerce.number().int().min(1024).default(19456),
  ARGON2_TIME_COST: z.coerce.number().int().min(1).default(2),
  ARGON2_PARALLELISM: z.coerce.number().int().min(1).default(1),
  ARGON2_MAX_CONCURRENCY: z.coerce.number().int().min(1).max(256).optional(),
  // Read by argon2's patched loader before this runs; checked here so that a misspelling stops the
  // start instead of leaving the fastest build in use.
  ARGON2_BUILD: z.enum(['portable']).optional(),
  ARGON2_NICE: z.coerce.number().int().min(0).max(19).default(19),
  // Renamed: a start that still sets it stops, rather than quietly running at the default.
  THREAD_POOL_NICE: z.never({ error: 'renamed ARGON2_NICE (it lowers the password hashes, no longer the whole thread pool)' }).optional(),
  LOGIN_MAX_FAILURES_PER_ACCOUNT: z.coerce.number().int().min(1).default(5),
  LOGIN_MAX_FAILURES_PER_IP: z.coerce.number().int().min(1).default(50),
  LOGIN_THROTTLE_WINDOW: seconds(15 * 60),
  PURGE_INTERVAL: seconds(300),
  CONSUMED_TOKEN_RETENTION: seconds(7 * 24 * 3600),
  AUDIT_RETENTION_DAYS: z.coerce.number().int().min(0).default(365),
  KEY_REFRESH_INTERVAL: seconds(10),
  PRODUCT_NAME: z.string().min(1).max(60).default('Latch'),
  SUPPORT_EMAIL: z.email().optional(),
  SMTP_URL: z.string().regex(/^smtps?:\/\//, 'must start with smtp:// or smtps://').optional(),
  // Each of the connection, the server's greeting and any silence during a send; the mail queue's
  // claim on a message (5 minutes) outlasts all three, so a stalled send ends before another starts.
  SMTP_TIMEOUT: z.coerce.number().int().min(1).max(60).default(30),
  MAIL_FROM: z
    .string()
    .refine((v) => {
      const found = addressparser(v);
      const address = found.length === 1 && 'address' in found[0]! ? found[0].address : undefined;
      return address !== undefined && /^[^@\s]+@[^@\s]+$/.test(address);
    }, 'one address, as name@host or Name <name@host>')
    .default('Latch <no-reply@localhost>'),
  OUTBOX_DIR: z.string().min(1).default('./data/outbox'),
  REGISTRATION_OPEN: z.stringbool().default(true),
  ALLOW_UNVERIFIED_LOGIN: z.stringbool().default(true),
  VERIFY_EMAIL_TTL: seconds(24 * 3600),
  RESET_PASSWORD_TTL: seconds(30 * 60),
  MAGIC_LINK_TTL: seconds(15 * 60),
  EMAIL_MAX_PER_ADDRESS: z.coerce.number().int().min(1).default(3),
  EMAIL_MAX_PER_IP: z.coerce.number().int().min(1).default(20),
  EMAIL_THROTTLE_WINDOW: seconds(15 * 60),
  HOME_URL: z.url().optional(),
  SERVICE_API_TOKEN: z.string().min(16, 'must be at least 16 characters').optional(),
  SERVICE_API_TOKEN_HEADER: z.string().regex(/^[A-Za-z0-9-]+$/, 'must be a header name').default('X-Service-Token'),
  METRICS_TOKEN: z.string().min(16, 'must be at least 16 characters').optional(),
  ADMIN_EMAIL: z.email().optional(),
  ADMIN_PASSWORD: z.string().min(8).optional(),
}).refine((env) => env.PORT !== 0 || env.PUBLIC_URL !== undefined, {
  path: ['PORT'],
  message: '0 (a free port) needs PUBLIC_URL: the issuer names the port, and the one picked is known only later',
});

export type Env = z.infer<typeof Env>;

export type Config = Readonly<ReturnType<typeof toConfig>>;

function toConfig(env: Env) {
  const publicUrl = (env.PUBLIC_URL ?? `http://localhost:${env.PORT}`).replace(/\/+$/, '');
  return {
    env: env.NODE_ENV,
    http: {
      host: env.HOST,
      port: env.PORT,
      workers: env.WORKERS,
      publicUrl,
      trustProxy: env.TRUST_PROXY > 0,
      // The client's address is this many entries from the right of X-Forwarded-For: entries
      // further left are whatever the client sent, and would let it pick the IP it is throttled by.
      proxyHops: env.TRUST_PROXY,
      secureCookies: publicUrl.startsWith('https://'),
    },
    db: { url: env.DATABASE_URL, poolSize: env.DATABASE_POOL_SIZE, commitWindowMs: env.DATABASE_COMMIT_WINDOW_MS, asyncTokenCommit: env.DATABASE_ASYNC_TOKEN_COMMIT, timeoutSeconds: env.DATABASE_TIMEOUT },
    oidc: {
      issuer: `${publicUrl}/o`,
      cookieKeys: env.COOKIE_KEYS,
      ttl: {
        accessToken: env.ACCESS_TOKEN_TTL,
        idToken: env.ID_TOKEN_TTL,
        refreshToken: env.REFRESH_TOKEN_TTL,
        authorizationCode: env.AUTHORIZATION_CODE_TTL,
        clientCredentials: env.CLIENT_CREDENTIALS_TTL,
        session: env.SESSION_TTL,
        interaction: env.INTERACTION_TTL,
        grant: env.GRANT_TTL,
      },
    },
    argon2: { memoryCost: env.ARGON2_MEMORY_KIB, timeCost: env.ARGON2_TIME_COST, parallelism: env.ARGON2_PARALLELISM },
    argon2MaxConcurrency: env.ARGON2_MAX_CONCURRENCY,
    argon2Nice: env.ARGON2_NICE,
    throttle: {
      maxFailuresPerAccount: env.LOGIN_MAX_FAILURES_PER_ACCOUNT,
      maxFailuresPerIp: env.LOGIN_MAX_FAILURES_PER_IP,
      windowSeconds: env.LOGIN_THROTTLE_WINDOW,
    },
    purgeIntervalSeconds: env.PURGE_INTERVAL,
    consumedTokenRetentionSeconds: env.CONSUMED_TOKEN_RETENTION,
    // 0 keeps the audit log forever.
    auditRetentionDays: env.AUDIT_RETENTION_DAYS,
    keyRefreshSeconds: env.KEY_REFRESH_INTERVAL,
    ops: {
      homeUrl: env.HOME_URL,
      status: { header: env.SERVICE_API_TOKEN_HEADER, token: env.SERVICE_API_TOKEN },
      metricsToken: env.METRICS_TOKEN,
    },
    product: { name: env.PRODUCT_NAME, supportEmail: env.SUPPORT_EMAIL ?? 'the administrator of this service' },
    mail: { smtpUrl: env.SMTP_URL, smtpTimeoutSeconds: env.SMTP_TIMEOUT, from: env.MAIL_FROM, outboxDir: env.OUTBOX_DIR },
    accounts: {
      registrationOpen: env.REGISTRATION_OPEN,
      allowUnverifiedLogin: env.ALLOW_UNVERIFIED_LOGIN,
      ttl: { verifyEmail: env.VERIFY_EMAIL_TTL, resetPassword: env.RESET_PASSWORD_TTL, magicLink: env.MAGIC_LINK_TTL },
    },
    emailThrottle: {
      maxPerAddress: env.EMAIL_MAX_PER_ADDRESS,
      maxPerIp: env.EMAIL_MAX_PER_IP,
      windowSeconds: env.EMAIL_THROTTLE_WINDOW,
    },
    log: { level: env.LOG_LEVEL },
    connections: { secretKeys: env.CONNECTION_SECRET_KEYS ?? [], upstreamTimeoutSeconds: env.UPSTREAM_TIMEOUT },
    bootstrapAdmin: env.ADMIN_EMAIL && env.ADMIN_PASSWORD ? { email: env.ADMIN_EMAIL, password: env.ADMIN_PASSWORD } : undefined,
  };
}

/** A setting the server refused while starting: main prints its message alone, with no stack. */
export class ConfigError extends Error {}

/** Validates the environment; throws one error naming every bad variable. */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  // An empty value (VAR= in .env, or `VAR: ${VAR:-}` in compose) means "not set".
  const given = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = Env.safeParse(given);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`);
    throw new ConfigError(`Invalid environment:\n${lines.join('\n')}`);
  }
  return deepFreeze(toConfig(parsed.data));
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
