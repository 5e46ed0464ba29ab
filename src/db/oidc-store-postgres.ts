import pg from 'pg';
import type { User } from '../generated/sqlite/client.js';
import { createGroupCommit, type GroupCommitOptions } from './group-commit.js';
import { keyOf, EFFECTIVE_TRUST, type AccountRecord, type ClientRecord, type FoundRow, type LiveRow, type OidcStore, type PayloadColumns, type RateLimitRow, type StoreWrite } from './oidc-store.js';
import { sideBatch, sideStatement, takeCounters, type SideWrite } from './postgres-side-writes.js';
import { epochMs, iso } from './postgres-time.js';
import { boundedPool } from './postgres-timeouts.js';

// Times go in and out as postgres-time.ts says. Statements are named, so each connection prepares them once.
const LIVE = '(expires_at IS NULL OR expires_at > $3::timestamp)';
const SELECT = 'SELECT payload, EXTRACT(EPOCH FROM consumed_at)::bigint AS consumed FROM oidc_payloads';

type PayloadRow = { payload: Record<string, unknown>; consumed: string | null };
type JoinedRow = PayloadRow & {
  i: number;
  grant_id: string | null;
  session_uid: string | null;
  grant_payload: Record<string, unknown> | null;
  grant_consumed: string | null;
  session_payload: Record<string, unknown> | null;
  session_consumed: string | null;
};

// Rows by (model, id), each with its grant and session (see FoundRow), in one statement. The
// session is a LATERAL ... LIMIT 1 as findBy reads it; the grant is by primary key. Their keys
// come from the row, by linkedIds' paths.
const GRANT_ID = `CASE WHEN t.model = 'Interaction' THEN t.payload->'result'->'consent'->>'grantId' ELSE t.grant_id END`;
const SESSION_UID = `CASE WHEN t.model = 'Interaction' THEN t.payload->'session'->>'uid' ELSE t.payload->>'sessionUid' END`;
const FIND_MANY = `SELECT k.i::int AS i, t.payload, EXTRACT(EPOCH FROM t.consumed_at)::bigint AS consumed,
    ${GRANT_ID} AS grant_id, ${SESSION_UID} AS session_uid,
    g.payload AS grant_payload, EXTRACT(EPOCH FROM g.consumed_at)::bigint AS grant_consumed,
    s.payload AS session_payload, EXTRACT(EPOCH FROM s.consumed_at)::bigint AS session_consumed
  FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS k(model, id, i)
  JOIN oidc_payloads t ON t.model = k.model AND t.id = k.id AND (t.expires_at IS NULL OR t.expires_at > $3::timestamp)
  LEFT JOIN oidc_payloads g ON g.model = 'Grant' AND g.id = ${GRANT_ID} AND (g.expires_at IS NULL OR g.expires_at > $3::timestamp)
  LEFT JOIN LATERAL (
    SELECT payload, consumed_at FROM oidc_payloads
    WHERE model = 'Session' AND uid = ${SESSION_UID} AND (expires_at IS NULL OR expires_at > $3::timestamp) LIMIT 1
  ) s ON true`;

// Emails hold an @ and usernames cannot, so at most one user matches.
const USER_BY_LOGIN = `SELECT id, email, email_normalized AS "emailNormalized", username, username_normalized AS "usernameNormalized",
    given_name AS "givenName", family_name AS "familyName", name, email_verified AS "emailVerified", active, is_staff AS "isStaff",
    is_admin AS "isAdmin", is_developer AS "isDeveloper", password_hash AS "passwordHash", password_unproven AS "passwordUnproven", picture,
    ${epochMs('last_login_at')} AS "lastLoginAt", ${epochMs('created_at')} AS "createdAt", ${epochMs('updated_at')} AS "updatedAt"
  FROM users WHERE email_normalized = $1 OR username_normalized = $1 LIMIT 1`;
type UserRow = Omit<User, 'lastLoginAt' | 'createdAt' | 'updatedAt'> & { lastLoginAt: string | null; createdAt: string; updatedAt: string };

const UPSERT_COLUMNS = 'model, id, payload, grant_id, uid, user_code, account_id, client_id, expires_at, consumed_at';
const ON_CONFLICT = `ON CONFLICT (model, id) DO UPDATE SET payload = EXCLUDED.payload, grant_id = EXCLUDED.grant_id, uid = EXCLUDED.uid,
  user_code = EXCLUDED.user_code, account_id = EXCLUDED.account_id, client_id = EXCLUDED.client_id,
  expires_at = EXCLUDED.expires_at, consumed_at = EXCLUDED.consumed_at`;

// A batch in one statement: the DELETE (a data-modifying CTE, which always runs) and the INSERT
// see one snapshot, in one transaction. They must not touch the same row, which holds because a
// batch names each row once.
const BATCH = `WITH
  destroyed AS (DELETE FROM oidc_payloads p USING unnest($1::text[], $2::text[]) AS d(model, id) WHERE p.model = d.model AND p.id = d.id)
  INSERT INTO oidc_payloads (${UPSERT_COLUMNS})
  SELECT * FROM unnest($3::text[], $4::text[], $5::jsonb[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::timestamp[], $12::timestamp[])
  ${ON_CONFLICT}`;

function batchValues(writes: readonly StoreWrite[]) {
  const columns = Array.from({ length: 12 }, () => [] as unknown[]);
  const push = (offset: number, values: unknown[]) => values.forEach((v, i) => columns[offset + i]!.push(v));
  for (const w of writes) {
    if (w.kind === 'destroy') push(0, [w.model, w.id]);
    else {
      const c = w.columns;
      push(2, [w.model, w.id, w.json, c.grantId, c.uid, c.userCode, c.accountId, c.clientId, iso(c.expiresAt), iso(c.consumedAt)]);
    }
  }
  return columns;
}

/**
 * The statements here are prepared once per connection, and their generic plans are the right
 * ones (index lookups by key). Left to choose, PostgreSQL plans each execution afresh once the
 * provider table has been analysed with many rows, because it misjudges how many keys an array
 * parameter holds: about a millisecond of planning per lookup, several times the lookup itself
 * (measured: introspection 0.33 of the ceiling with 70,000 rows in the table, 0.56 with this).
 */
export const prepareConnection = (client: pg.ClientBase) => client.query('SET plan_cache_mode = force_generic_plan');
const noop = () => {};

// Kinds whose newly issued rows may be lost in a crash: a client whose access token is lost gets
// invalid_token, as for an expired one, and asks again. The commits that write only these (every
// client-credentials grant) need not wait for the WAL flush: PostgreSQL flushes them within three
// times its wal_writer_delay (600 ms by default), whole and in order. Every other write waits:
// codes, refresh tokens, sessions, grants, and all destroys, so a revocation is never lost.
const LOSABLE_ISSUES = new Set(['AccessToken', 'ClientCredentials']);
/** Whether a batch may commit without waiting for the WAL flush (see LOSABLE_ISSUES). */
export const mayCommitUnflushed = (writes: readonly StoreWrite[]) => writes.every((w) => w.kind === 'upsert' && LOSABLE_ISSUES.has(w.model));
/** For the connections that commit such batches. */
export const prepareUnflushedConnection = async (client: pg.ClientBase) => {
  await prepareConnection(client);
  await client.query('SET synchronous_commit = off');
};

export type PostgresStoreOptions = {
  /** Connections for reads and the writes that wait for the WAL flush. */
  max: number;
  onIdleError: (err: Error) => void;
  commitWindowMs: number;
  /** Whether other requests are under way (see group-commit.ts). */
  othersAtWork?: GroupCommitOptions<unknown>['othersAtWork'];
  /** Whether the batches that need not wait for the WAL flush (mayCommitUnflushed) do not. */
  asyncTokenCommit: boolean;
  /** DATABASE_TIMEOUT, seconds; 0: unbounded (see postgres-timeouts.ts). */
  timeoutSeconds: number;
};
// Such commits are short (no flush to wait for): two connections keep up with a core's grants.
export const UNFLUSHED_CONNECTIONS = 2;
/** How those connections show in pg_stat_activity. */
export const UNFLUSHED_APPLICATION_NAME = 'latch-async-token-commit';

export function createPostgresOidcStore(url: string, { max, onIdleError, commitWindowMs, othersAtWork, asyncTokenCommit, timeoutSeconds }: PostgresStoreOptions): OidcStore {
  // Each new connection is prepared before its first query; a server that refuses a setting keeps its default.
  const connect = (prepare: (client: pg.ClientBase) => Promise<unknown>, size: number, name?: string) => {
    // Single statements only (a group commit is one statement), so a silent host is bounded too.
    const p = boundedPool({ connectionString: url, max: size, application_name: name }, timeoutSeconds, { singleStatements: true, prepare });
    // An idle connection can be cut (database restart, failover): pg reports it here, and the pool
    // replaces the connection on next use. Without a listener the process would crash.
    p.on('error', onIdleError);
    return p;
  };
  const pool = connect(prepareConnection, max);
  const unflushedPool = asyncTokenCommit ? connect(prepareUnflushedConnection, UNFLUSHED_CONNECTIONS, UNFLUSHED_APPLICATION_NAME) : undefined;
  const query = async <R extends pg.QueryResultRow>(name: string, text: string, values: unknown[], via: pg.Pool = pool) => (await via.query<R>({ name, text, values })).rows;
  const toLive = (row: PayloadRow | undefined): LiveRow | undefined => row && { payload: row.payload, consumed: row.consumed === null ? null : Number(row.consumed) };
  const now = () => new Date().toISOString();
  const toFound = (row: JoinedRow): FoundRow => {
    const found: FoundRow = toLive(row)!;
    if (row.grant_id) found.grant = row.grant_payload === null ? null : toLive({ payload: row.grant_payload, consumed: row.grant_consumed })!;
    if (row.session_uid) found.session = row.session_payload === null ? null : toLive({ payload: row.session_payload, consumed: row.session_consumed })!;
    return found;
  };

  const upsert = (model: string, id: string, json: string, c: PayloadColumns, via = pool) =>
    query(
      'oidc_upsert',
      `INSERT INTO oidc_payloads (${UPSERT_COLUMNS}) VALUES ($1, $2, $3::jsonb, $4, $5, $6, $7, $8, $9::timestamp, $10::timestamp) ${ON_CONFLICT}`,
      [model, id, json, c.grantId, c.uid, c.userCode, c.accountId, c.clientId, iso(c.expiresAt), iso(c.consumedAt)],
      via,
    );
  // A consumed row expires at `keepUntil` if it would live longer (see CONSUMED_TOKEN_RETENTION).
  const consume = async (model: string, id: string, at: string, keepUntil: string) =>
    (
      await pool.query({
        name: 'oidc_consume',
        text: `UPDATE oidc_payloads SET consumed_at = $3::timestamp, expires_at = LEAST(COALESCE(expires_at, $4::timestamp), $4::timestamp)
          WHERE model = $1 AND id = $2 AND consumed_at IS NULL`,
        values: [model, id, at, keepUntil],
      })
    ).rowCount === 1;
  const destroy = (model: string, id: string, via = pool) => query('oidc_destroy', 'DELETE FROM oidc_payloads WHERE model = $1 AND id = $2', [model, id], via);

  const applyBatch = async (writes: readonly StoreWrite[], via = pool) => {
    if (writes.length > 1) {
      await query('oidc_batch', BATCH, batchValues(writes), via);
      return;
    }
    // One write: its own prepared statement is cheaper than the batch's.
    const [w] = writes as [StoreWrite];
    if (w.kind === 'upsert') await upsert(w.model, w.id, w.json, w.columns, via);
    else await destroy(w.model, w.id, via);
  };

  // Group commit (see group-commit.ts): the batches of requests that end at once go to PostgreSQL
  // as one statement, so one transaction and one WAL flush. Requests applied one after another
  // leave each row as the last of them wrote it, so the group keeps each row's latest write.
  // Batches that need not wait for the flush are grouped apart, on their own connections.
  const groupCommit = (via: pg.Pool) =>
    createGroupCommit<readonly StoreWrite[]>({
      windowMs: commitWindowMs,
      othersAtWork,
      commitAll(group) {
        const merged = new Map<string, StoreWrite>();
        for (const writes of group) for (const w of writes) merged.set(keyOf(w.model, w.id), w);
        return applyBatch([...merged.values()], via);
      },
      commitOne: (writes) => applyBatch(writes, via),
    });
  const commits = groupCommit(pool);
  const unflushedCommits = unflushedPool && groupCommit(unflushedPool);

  const applySide = (w: SideWrite) => query(...sideStatement(w)).then(noop);
  const sideCommits = createGroupCommit<SideWrite>({
    windowMs: commitWindowMs,
    othersAtWork,
    commitAll: (group) => (group.length === 1 ? applySide(group[0]!) : query(...sideBatch(group)).then(noop)),
    commitOne: applySide,
  });

  return {
    async upsert(model, id, json, c) {
      await upsert(model, id, json, c);
    },
    find: async (model, id) => toLive((await query<PayloadRow>('oidc_find', `${SELECT} WHERE model = $1 AND id = $2 AND ${LIVE}`, [model, id, now()]))[0]),
    async findMany(keys) {
      const rows = await query<JoinedRow>('oidc_find_many', FIND_MANY, [keys.map((k) => k.model), keys.map((k) => k.id), now()]);
      const found: (FoundRow | undefined)[] = keys.map(() => undefined);
      for (const row of rows) found[row.i - 1] = toFound(row);
      return found;
    },
    async findBy(model, column, value) {
      const name = column === 'uid' ? 'oidc_find_uid' : 'oidc_find_user_code';
      return toLive((await query<PayloadRow>(name, `${SELECT} WHERE model = $1 AND ${column} = $2 AND ${LIVE} LIMIT 1`, [model, value, now()]))[0]);
    },
    consume: (model, id, keepUntil, at) => consume(model, id, at ? iso(at)! : now(), iso(keepUntil)!),
    async unconsume(model, id, at, expiresAt) {
      await query('oidc_unconsume', 'UPDATE oidc_payloads SET consumed_at = NULL, expires_at = $4::timestamp WHERE model = $1 AND id = $2 AND consumed_at = $3::timestamp', [model, id, iso(at), iso(expiresAt)]);
    },
    async purgeExpired(before, limit) {
      const rows = await query<{ n: number }>(
        'oidc_purge',
        // SKIP LOCKED: processes purging at once take different rows. Without it they chose the
        // same oldest ones, and the one that lost found a short batch, took it for the end and stopped.
        'WITH gone AS (DELETE FROM oidc_payloads WHERE ctid IN (SELECT ctid FROM oidc_payloads WHERE expires_at < $1::timestamp LIMIT $2 FOR UPDATE SKIP LOCKED) RETURNING 1) SELECT count(*)::int AS n FROM gone',
        [iso(before), limit],
      );
      return rows[0]!.n;
    },
    async destroy(model, id) {
      await destroy(model, id);
    },
    async revokeByGrantId(grantId, models) {
      await query('oidc_revoke', 'DELETE FROM oidc_payloads WHERE grant_id = $1 AND model = ANY($2)', [grantId, models]);
    },
    writeBatch: (writes) => (!writes.length ? Promise.resolve() : unflushedCommits && mayCommitUnflushed(writes) ? unflushedCommits.add(writes) : commits.add(writes)),
    async findClient(clientId): Promise<ClientRecord | undefined> {
      const [row] = await query<{ metadata: Record<string, unknown>; trusted: boolean; resources: string }>(
        'oidc_client',
        `SELECT metadata, ${EFFECTIVE_TRUST} AS trusted, resources FROM clients c WHERE client_id = $1`,
        [clientId],
      );
      return row;
    },
    async findAccount(userId): Promise<AccountRecord | undefined> {
      const [u] = await query<Omit<AccountRecord, 'updatedAt'> & { updatedAt: string }>(
        'oidc_account',
        `SELECT id, email, email_verified AS "emailVerified", username, name, given_name AS "givenName", family_name AS "familyName", picture, active,
           EXTRACT(EPOCH FROM updated_at) * 1000 AS "updatedAt" FROM users WHERE id = $1`,
        [userId],
      );
      return u && { ...u, updatedAt: new Date(Number(u.updatedAt)) };
    },
    async findUserByLogin(login) {
      const [u] = await query<UserRow>('user_by_login', USER_BY_LOGIN, [login]);
      return (
        u && {
          ...u,
          lastLoginAt: u.lastLoginAt === null ? null : new Date(Number(u.lastLoginAt)),
          createdAt: new Date(Number(u.createdAt)),
          updatedAt: new Date(Number(u.updatedAt)),
        }
      );
    },
    // At once, not grouped, as consume: the answer decides whether the attempt may go on.
    async takeRateLimits(keys, windowMs): Promise<RateLimitRow[]> {
      const rows = await query<{ key: string; points: number; expire: string | null }>(...takeCounters(keys, new Date(), windowMs));
      return rows.map((r) => ({ key: r.key, points: r.points, expire: r.expire === null ? null : new Date(Number(r.expire)) }));
    },
    returnRateLimits: (r) => sideCommits.add({ kind: 'counters', r }),
    recordLogin: (userId, at, passwordHash) => sideCommits.add({ kind: 'login', userId, at, passwordHash: passwordHash ?? null }),
    insertAuditEvent: (event) => sideCommits.add({ kind: 'audit', event }),
    async close() {
      // Writes still waiting for their group are committed, not dropped.
      await Promise.all([commits.drain(), unflushedCommits?.drain(), sideCommits.drain()]);
      await Promise.all([pool.end(), unflushedPool?.end()]);
    },
  };
}
