import type { User } from '../generated/sqlite/client.js';
import type { Provider } from './url.js';

/** One provider row's indexed columns, as the adapter writes them. */
export type PayloadColumns = {
  grantId: string | null;
  uid: string | null;
  userCode: string | null;
  accountId: string | null;
  clientId: string | null;
  expiresAt: Date | null;
  consumedAt: Date | null;
};

/** A live (unexpired) row: the payload and, when consumed, the epoch second it was. */
export type LiveRow = { payload: Record<string, unknown>; consumed: number | null };

export type RowKey = { model: string; id: string };
/**
 * How long the first write of a group commit waits for others to join it (both stores). At full
 * load the requests of one event-loop turn fill a commit anyway; at the moderate rates a server
 * mostly runs at, requests arrive a few at a time, and a commit costs much the same for one
 * grant as for several (SQLite: the log pages of every index it touched; PostgreSQL: a statement
 * and a WAL flush). Measured per client-credentials grant at 3,800-4,000 a second: 3 ms took 8 %
 * less server CPU than 1 ms on SQLite and 11 % less on PostgreSQL, with p99 no worse; 6 ms saved
 * 5 % more on SQLite but added as much again at the median. A write answers up to this much later,
 * so clients that send one request at a time get fewer through: 32 of them drew about 7 % fewer
 * grants a second from SQLite than with 1 ms.
 */
export const GROUP_COMMIT_WINDOW_MS = 3;

/** One string per (model, id), for maps of rows. */
export const keyOf = (model: string, id: string) => `${model}\u0000${id}`;

/**
 * A row as findMany returns it, with the rows the provider checks it against or reads next, read
 * in the same statement: the Grant and the Session linkedIds names. Each is null when named but not
 * live, and absent when the row names none (or, for a token answered from the token cache, when
 * its session was not kept: see token-cache.ts).
 */
export type FoundRow = LiveRow & { grant?: LiveRow | null; session?: LiveRow | null };

/**
 * The Grant (by id) and the Session (by uid) that come with a row. A token names both, and the
 * provider checks it against them. An interaction names the session it began in, which
 * interactionDetails reads next, and, once consented, the grant the resumed authorization reads
 * next. The stores' findMany reads the same paths, in SQL.
 */
export function linkedIds(model: string, payload: Record<string, unknown>): { grantId: unknown; sessionUid: unknown } {
  if (model !== 'Interaction') return { grantId: payload.grantId, sessionUid: payload.sessionUid };
  const { session, result } = payload as { session?: { uid?: unknown }; result?: { consent?: { grantId?: unknown } } };
  return { grantId: result?.consent?.grantId, sessionUid: session?.uid };
}

/**
 * One write of a batch; a batch names each (model, id) at most once. An upsert carries its payload
 * serialized (JSON), as the adapter wrote it: both stores write it as text, and a write held until
 * the end of its request is a snapshot the provider's later changes to the object cannot reach.
 */
export type StoreWrite =
  | { kind: 'upsert'; model: string; id: string; json: string; columns: PayloadColumns }
  | { kind: 'destroy'; model: string; id: string };

export type ClientRecord = { metadata: Record<string, unknown>; trusted: boolean; resources: string };

/**
 * A client row's `trusted`, as the provider and /api act on it (`c` names the clients row): only
 * while no user owns the app or its owner is an active admin (apps.service's mayHoldPrivileges), so
 * an app trusted before that rule, or whose owner lost the role, asks for consent again and its
 * users' tokens stop working at /api, within the client cache's lifetime.
 */
export const EFFECTIVE_TRUST = '(c.trusted AND (c.owner_id IS NULL OR EXISTS (SELECT 1 FROM users u WHERE u.id = c.owner_id AND u.active AND u.is_admin)))';

/** What an OIDC account needs of a user: its claims and whether it may act at all. */
export type AccountRecord = {
  id: string;
  email: string;
  emailVerified: boolean;
  username: string | null;
  name: string | null;
  givenName: string | null;
  familyName: string | null;
  picture: string | null;
  active: boolean;
  updatedAt: Date;
};

/**
 * A throttle counter, in the table and format rate-limiter-flexible's Prisma store keeps (its key
 * includes the limiter's prefix): the points taken in the window that ends at `expire` (never, when null).
 */
export type RateLimitRow = { key: string; points: number; expire: Date | null };

/**
 * What an attempt does with the points it took (takeRateLimits) once it is over: `clear` deletes
 * counters; `giveBack` returns one point to each counter named, provided it is still in the window
 * the point was taken in (its `expire` as takeRateLimits answered). A key is cleared or given back, not both.
 */
export type RateLimitReturn = { clear: readonly string[]; giveBack: readonly Pick<RateLimitRow, 'key' | 'expire'>[] };

/** An audit event as stored (see audit.service). */
export type AuditRow = {
  id: string;
  event: string;
  userId: string | null;
  actorId: string | null;
  ip: string | null;
  userAgent: string | null;
  detail: object | null;
  createdAt: Date;
};

/**
 * The hot path storage: every token, code and session read and write, client and account
 * lookups, and a password sign-in's reads and writes. Implemented over the raw drivers with
 * prepared statements (SQLite: better-sqlite3, PostgreSQL: pg), on the tables Prisma's
 * migrations create; Prisma serves everything else.
 * Measured here, a Prisma query costs about 0.3 ms against about 0.01 ms for a prepared
 * better-sqlite3 statement, and the token endpoint makes several per request.
 */
export interface OidcStore {
  /** `json`: the payload, serialized. */
  upsert(model: string, id: string, json: string, columns: PayloadColumns): Promise<void>;
  find(model: string, id: string): Promise<LiveRow | undefined>;
  /** Several rows in one round trip, each with its grant and session (see FoundRow), in key order. */
  findMany(keys: readonly RowKey[]): Promise<(FoundRow | undefined)[]>;
  findBy(model: string, column: 'uid' | 'user_code', value: string): Promise<LiveRow | undefined>;
  /**
   * Marks the row consumed unless it already is, atomically: true for the one caller that
   * consumed it. A consumed row is kept (for replay detection) until `keepUntil` at most.
   */
  consume(model: string, id: string, keepUntil: Date, at?: Date): Promise<boolean>;
  /**
   * Undoes the consume made `at` (see consume), restoring the row's expiry, if the row is still as
   * that consume left it: for a request that failed before storing what it exchanged the row for.
   */
  unconsume(model: string, id: string, at: Date, expiresAt: Date | null): Promise<void>;
  destroy(model: string, id: string): Promise<void>;
  revokeByGrantId(grantId: string, models: readonly string[]): Promise<void>;
  /** Deletes up to `limit` rows that expired before `before`; returns how many. */
  purgeExpired(before: Date, limit: number): Promise<number>;
  /** Applies the writes atomically, in one round trip. */
  writeBatch(writes: readonly StoreWrite[]): Promise<void>;
  findClient(clientId: string): Promise<ClientRecord | undefined>;
  findAccount(userId: string): Promise<AccountRecord | undefined>;

  // A password sign-in's own reads and writes, made on every attempt around the argon2 hash.
  /** The user whose normalized email or username is `login`, every column as Prisma reads it. */
  findUserByLogin(login: string): Promise<User | undefined>;
  /**
   * Takes one point on each counter named (distinct keys), at once and atomically, in one
   * statement: a live counter gains a point; a missing or expired one starts a window of `windowMs`
   * with this point, as rate-limiter-flexible does. Answers every counter as it is after (any order),
   * so concurrent attempts each see the points of those before them.
   */
  takeRateLimits(keys: readonly string[], windowMs: number): Promise<RateLimitRow[]>;
  /** Settles taken points (see RateLimitReturn), grouped with the other writes of the moment, as recordLogin is. */
  returnRateLimits(r: RateLimitReturn): Promise<void>;
  /**
   * Sets the user's last sign-in time and, when given, a new password hash. Not a change to the
   * user's information, so `updated_at` (the updated_at claim) stays as it is.
   */
  recordLogin(userId: string, at: Date, passwordHash?: string): Promise<void>;
  insertAuditEvent(event: AuditRow): Promise<void>;

  close(): Promise<void>;
}

export type OidcStoreOptions = {
  /** PostgreSQL connections. */
  poolSize: number;
  /** How long a group commit waits for more writes (GROUP_COMMIT_WINDOW_MS by default; 0: one loop turn). */
  commitWindowMs?: number;
  /** Whether other requests are under way (see group-commit.ts); by default a group always waits the window. */
  othersAtWork?: () => boolean;
  /** A lost idle PostgreSQL connection, or a failed SQLite checkpoint thread. */
  onError?: (err: Error) => void;
  /** PostgreSQL: commits that only issue access tokens do not wait for the WAL flush (see oidc-store-postgres.ts). */
  asyncTokenCommit?: boolean;
  /** PostgreSQL: DATABASE_TIMEOUT, seconds (see postgres-timeouts.ts). */
  timeoutSeconds?: number;
};

export async function createOidcStore(provider: Provider, url: string, { poolSize, commitWindowMs = GROUP_COMMIT_WINDOW_MS, othersAtWork, onError = () => {}, asyncTokenCommit = false, timeoutSeconds = 10 }: OidcStoreOptions): Promise<OidcStore> {
  if (provider === 'sqlite') return (await import('./oidc-store-sqlite.js')).createSqliteOidcStore(url, { onError, commitWindowMs, othersAtWork });
  return (await import('./oidc-store-postgres.js')).createPostgresOidcStore(url, { max: poolSize, onIdleError: onError, commitWindowMs, othersAtWork, asyncTokenCommit, timeoutSeconds });
}
