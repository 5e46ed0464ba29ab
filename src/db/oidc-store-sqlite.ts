import Database from 'better-sqlite3';
import type { User } from '../generated/sqlite/client.js';
import { createGroupCommit, type GroupCommitOptions } from './group-commit.js';
import { EFFECTIVE_TRUST, type AccountRecord, type ClientRecord, type FoundRow, type LiveRow, type OidcStore, type PayloadColumns, type RateLimitReturn, type RateLimitRow, type RowKey, type StoreWrite } from './oidc-store.js';
import { sqliteFile } from './url.js';
import { SQLITE_LOCK_WAIT_MS, whenUnlocked } from './sqlite-lock-wait.js';
import { CHECKPOINT_BACKSTOP_PAGES, RESTART_LOG_FRAMES, createCheckpointer, type CheckpointerOptions } from './sqlite-checkpointer.js';

// Prisma's SQLite format for DateTime: ISO 8601 text with an explicit UTC offset. Text compares
// in time order, so expiry checks are string comparisons, as Prisma's own are.
const toText = (d: Date | null) => (d ? d.toISOString().replace('Z', '+00:00') : null);

type PayloadRow = { payload: string; consumed_at: string | null };
type UserRow = Omit<User, 'emailVerified' | 'active' | 'isStaff' | 'isAdmin' | 'isDeveloper' | 'passwordUnproven' | 'lastLoginAt' | 'createdAt' | 'updatedAt'> & {
  emailVerified: number;
  passwordUnproven: number;
  active: number;
  isStaff: number;
  isAdmin: number;
  isDeveloper: number;
  lastLoginAt: string | null;
  createdAt: string;
  updatedAt: string;
};
type JoinedRow = PayloadRow & {
  grant_id: string | null;
  session_uid: string | null;
  grant_payload: string | null;
  grant_consumed_at: string | null;
  session_payload: string | null;
  session_consumed_at: string | null;
};

export function createSqliteOidcStore(
  url: string,
  { onError, commitWindowMs, othersAtWork }: Pick<CheckpointerOptions, 'onError'> & Pick<GroupCommitOptions<unknown>, 'othersAtWork'> & { commitWindowMs: number },
): OidcStore {
  const file = sqliteFile(url);
  // No busy timeout: a statement that finds the database locked by another connection waits
  // for it on a timer (whenUnlocked), with the event loop serving everything else meanwhile.
  const db = new Database(file, { timeout: 0 });
  // WAL (set by the migrator) with NORMAL sync: no fsync per commit; a power cut can lose the
  // last transactions but never corrupts the file.
  db.pragma('synchronous = NORMAL');
  // Checkpoints run on a thread of their own; this connection makes one only past the backstop.
  db.pragma(`wal_autocheckpoint = ${CHECKPOINT_BACKSTOP_PAGES}`);
  const checkpointer = createCheckpointer(file, { onError });

  const upsert = db.prepare(`
    INSERT INTO oidc_payloads (model, id, payload, grant_id, uid, user_code, account_id, client_id, expires_at, consumed_at)
    VALUES (@model, @id, @payload, @grantId, @uid, @userCode, @accountId, @clientId, @expiresAt, @consumedAt)
    ON CONFLICT (model, id) DO UPDATE SET payload = excluded.payload, grant_id = excluded.grant_id, uid = excluded.uid,
      user_code = excluded.user_code, account_id = excluded.account_id, client_id = excluded.client_id,
      expires_at = excluded.expires_at, consumed_at = excluded.consumed_at`);
  const live = '(expires_at IS NULL OR expires_at > ?)';
  const find = db.prepare<[string, string, string], PayloadRow>(`SELECT payload, consumed_at FROM oidc_payloads WHERE model = ? AND id = ? AND ${live}`);
  // A row with its grant and session (see FoundRow): one statement instead of three. The subquery
  // takes their keys from the row, by linkedIds' paths.
  const findJoined = db.prepare<{ model: string; id: string; now: string }, JoinedRow>(`
    SELECT t.payload, t.consumed_at, t.grant_id, t.session_uid,
      g.payload AS grant_payload, g.consumed_at AS grant_consumed_at, s.payload AS session_payload, s.consumed_at AS session_consumed_at
    FROM (
      SELECT payload, consumed_at,
        CASE model WHEN 'Interaction' THEN json_extract(payload, '$.result.consent.grantId') ELSE grant_id END AS grant_id,
        json_extract(payload, CASE model WHEN 'Interaction' THEN '$.session.uid' ELSE '$.sessionUid' END) AS session_uid
      FROM oidc_payloads WHERE model = @model AND id = @id AND (expires_at IS NULL OR expires_at > @now)
    ) t
    LEFT JOIN oidc_payloads g ON g.model = 'Grant' AND g.id = t.grant_id AND (g.expires_at IS NULL OR g.expires_at > @now)
    LEFT JOIN oidc_payloads s ON s.model = 'Session' AND s.uid = t.session_uid AND (s.expires_at IS NULL OR s.expires_at > @now)`);
  const readJoined = ({ model, id }: RowKey, at: string) => findJoined.get({ model, id, now: at });
  // Several rows in one read transaction: in WAL mode every transaction takes and releases a lock
  // on the shared-memory index, two system calls that cost more than a lookup (measured here: 18
  // µs for three lookups in one transaction, 29 µs in three).
  const readMany = db.transaction((keys: readonly RowKey[], at: string) => keys.map((key) => readJoined(key, at)));
  const findByUid = db.prepare<[string, string, string], PayloadRow>(`SELECT payload, consumed_at FROM oidc_payloads WHERE model = ? AND uid = ? AND ${live} LIMIT 1`);
  const findByUserCode = db.prepare<[string, string, string], PayloadRow>(`SELECT payload, consumed_at FROM oidc_payloads WHERE model = ? AND user_code = ? AND ${live} LIMIT 1`);
  // A consumed row expires at `keepUntil` if it would live longer (see CONSUMED_TOKEN_RETENTION).
  const consumeRow = db.prepare<{ at: string; keep: string; model: string; id: string }>(
    'UPDATE oidc_payloads SET consumed_at = @at, expires_at = CASE WHEN expires_at IS NULL OR expires_at > @keep THEN @keep ELSE expires_at END WHERE model = @model AND id = @id AND consumed_at IS NULL',
  );
  const unconsumeRow = db.prepare<{ at: string; expiresAt: string | null; model: string; id: string }>(
    'UPDATE oidc_payloads SET consumed_at = NULL, expires_at = @expiresAt WHERE model = @model AND id = @id AND consumed_at = @at',
  );
  const purge = db.prepare<[string, number]>('DELETE FROM oidc_payloads WHERE rowid IN (SELECT rowid FROM oidc_payloads WHERE expires_at < ? LIMIT ?)');
  const destroy = db.prepare('DELETE FROM oidc_payloads WHERE model = ? AND id = ?');
  const revoke = db.prepare('DELETE FROM oidc_payloads WHERE grant_id = ? AND model IN (SELECT value FROM json_each(?))');
  const client = db.prepare<[string], { metadata: string; trusted: number; resources: string }>(`SELECT metadata, ${EFFECTIVE_TRUST} AS trusted, resources FROM clients c WHERE client_id = ?`);

  const account = db.prepare<[string], { id: string; email: string; email_verified: number; username: string | null; name: string | null; given_name: string | null; family_name: string | null; picture: string | null; active: number; updated_at: string }>(
    'SELECT id, email, email_verified, username, name, given_name, family_name, picture, active, updated_at FROM users WHERE id = ?',
  );

  // Emails hold an @ and usernames cannot, so at most one user matches.
  const userByLogin = db.prepare<[string, string], UserRow>(`
    SELECT id, email, email_normalized AS emailNormalized, username, username_normalized AS usernameNormalized,
      given_name AS givenName, family_name AS familyName, name, email_verified AS emailVerified, active, is_staff AS isStaff,
      is_admin AS isAdmin, is_developer AS isDeveloper, password_hash AS passwordHash, password_unproven AS passwordUnproven, picture,
      last_login_at AS lastLoginAt, created_at AS createdAt, updated_at AS updatedAt
    FROM users WHERE email_normalized = ? OR username_normalized = ? LIMIT 1`);
  // Throttle counters as rate-limiter-flexible keeps them: a counter whose window has passed
  // (expire <= now) starts again with this point, any other gains one. One statement, so
  // concurrent attempts (other processes included) each take their own point.
  const takeCounters = db.prepare<{ keys: string; now: string; expire: string }, { key: string; points: number; expire: string | null }>(`
    INSERT INTO rate_limits (key, points, expire) SELECT DISTINCT value, 1, @expire FROM json_each(@keys) WHERE true
    ON CONFLICT (key) DO UPDATE SET
      points = CASE WHEN expire IS NOT NULL AND expire <= @now THEN 1 ELSE points + 1 END,
      expire = CASE WHEN expire IS NOT NULL AND expire <= @now THEN excluded.expire ELSE expire END
    RETURNING key, points, expire`);
  const clearCounters = db.prepare<[string]>('DELETE FROM rate_limits WHERE key IN (SELECT value FROM json_each(?))');
  // Only in the window the point was taken in: a counter started again since owes nothing back.
  const giveBackPoint = db.prepare<{ key: string; expire: string | null; cleared: string }>(
    'UPDATE rate_limits SET points = max(points - 1, 0) WHERE key = @key AND expire IS @expire AND key NOT IN (SELECT value FROM json_each(@cleared))',
  );
  const returnCounters = ({ clear, giveBack }: RateLimitReturn) => {
    const cleared = JSON.stringify(clear);
    if (clear.length) clearCounters.run(cleared);
    for (const { key, expire } of giveBack) giveBackPoint.run({ key, expire: toText(expire), cleared });
  };
  const lastLogin = db.prepare<{ id: string; at: string; hash: string | null }>(
    'UPDATE users SET last_login_at = @at, password_hash = COALESCE(@hash, password_hash) WHERE id = @id',
  );
  const auditInsert = db.prepare(
    'INSERT INTO audit_events (id, event, user_id, actor_id, ip, user_agent, detail, created_at) VALUES (@id, @event, @userId, @actorId, @ip, @userAgent, @detail, @createdAt)',
  );

  // Group commit (see group-commit.ts): one transaction for the writes of requests that end at
  // once. Once the log passes RESTART_LOG_FRAMES, groups wait while the thread copies the last of
  // it (see restartLog), so that the next write restarts it.
  // Each write with the time it was handed over: it waits for another connection's lock until
  // SQLITE_LOCK_WAIT_MS from then, whether in its first group or behind one that waited.
  type Write = { run: () => void; at: number };
  const commitGroup = db.transaction((group: Write[]) => group.forEach((w) => w.run()));
  const whenUnlockedFor = (group: Write[]) => whenUnlocked(() => commitGroup(group), group[0]!.at + SQLITE_LOCK_WAIT_MS - Date.now());
  const commits = createGroupCommit<Write>({
    windowMs: commitWindowMs,
    othersAtWork,
    // A group waiting for another connection's lock (whenUnlocked) must not be overtaken by a later
    // one: a session written and then destroyed would come back.
    oneAtATime: true,
    commitAll(group) {
      checkpointer.wake();
      return whenUnlockedFor(group);
    },
    // After a group failed, each write is retried in a transaction of its own, so a batch is
    // applied whole or not at all.
    commitOne: (w) => whenUnlockedFor([w]),
    afterCommit() {
      if (checkpointer.logFrames >= RESTART_LOG_FRAMES) void checkpointer.restartLog((copied) => commits.hold(copied));
    },
  });
  const write = (run: () => void) => commits.add({ run, at: Date.now() });

  const upsertRow = (model: string, id: string, json: string, c: PayloadColumns) => ({
    model,
    id,
    payload: json,
    ...c,
    expiresAt: toText(c.expiresAt),
    consumedAt: toText(c.consumedAt),
  });
  const apply = (w: StoreWrite) => {
    if (w.kind === 'upsert') upsert.run(upsertRow(w.model, w.id, w.json, w.columns));
    else destroy.run(w.model, w.id);
  };

  const toLive = (row: PayloadRow | undefined): LiveRow | undefined =>
    row && { payload: JSON.parse(row.payload) as Record<string, unknown>, consumed: row.consumed_at ? Math.floor(Date.parse(row.consumed_at) / 1000) : null };
  const now = () => toText(new Date())!;
  const toFound = (row: JoinedRow | undefined): FoundRow | undefined => {
    if (!row) return undefined;
    const found: FoundRow = toLive(row)!;
    if (row.grant_id) found.grant = row.grant_payload === null ? null : toLive({ payload: row.grant_payload, consumed_at: row.grant_consumed_at })!;
    if (row.session_uid) found.session = row.session_payload === null ? null : toLive({ payload: row.session_payload, consumed_at: row.session_consumed_at })!;
    return found;
  };

  return {
    upsert(model, id, json, c: PayloadColumns) {
      const row = upsertRow(model, id, json, c);
      return write(() => upsert.run(row));
    },
    find: async (model, id) => toLive(await whenUnlocked(() => find.get(model, id, now()))),
    async findMany(keys) {
      const at = now();
      return (await whenUnlocked(() => (keys.length > 1 ? readMany(keys, at) : keys.map((key) => readJoined(key, at))))).map(toFound);
    },
    findBy: async (model, column, value) => toLive(await whenUnlocked(() => (column === 'uid' ? findByUid : findByUserCode).get(model, value, now()))),
    // At once, not grouped: the answer decides whether the caller may redeem the code or token.
    // Like the grouped writes, it waits out a hold for the log's restart.
    async consume(model, id, keepUntil, at) {
      await commits.released();
      checkpointer.wake();
      const row = { at: at ? toText(at)! : now(), keep: toText(keepUntil)!, model, id };
      return (await whenUnlocked(() => consumeRow.run(row))).changes === 1;
    },
    async unconsume(model, id, at, expiresAt) {
      await commits.released();
      await whenUnlocked(() => unconsumeRow.run({ at: toText(at)!, expiresAt: toText(expiresAt), model, id }));
    },
    // A batch goes with a group, so it waits, like any write, while the log restarts: run beside
    // the groups, purges grew the log to 42 MB against 20-26 MB.
    async purgeExpired(before, limit) {
      let count = 0;
      await write(() => {
        count = purge.run(toText(before)!, limit).changes;
      });
      return count;
    },
    destroy: (model, id) => write(() => destroy.run(model, id)),
    revokeByGrantId: (grantId, models) => write(() => revoke.run(grantId, JSON.stringify(models))),
    // Whole or not at all with the group it goes in, or alone when retried (see commitOne). Not a
    // savepoint of its own: inside a transaction SQLite copies every page a savepoint changes to a
    // sub-journal first, which outgrew its 64 KiB in memory a few times a second during sign-ins
    // and spilled to a temporary file (created, written and deleted on the event loop).
    writeBatch: (writes) => write(() => writes.forEach(apply)),
    async findClient(clientId): Promise<ClientRecord | undefined> {
      const row = await whenUnlocked(() => client.get(clientId));
      return row && { metadata: JSON.parse(row.metadata) as Record<string, unknown>, trusted: row.trusted === 1, resources: row.resources };
    },
    async findAccount(userId): Promise<AccountRecord | undefined> {
      const u = await whenUnlocked(() => account.get(userId));
      return (
        u && {
          id: u.id,
          email: u.email,
          emailVerified: u.email_verified === 1,
          username: u.username,
          name: u.name,
          givenName: u.given_name,
          familyName: u.family_name,
          picture: u.picture,
          active: u.active === 1,
          updatedAt: new Date(u.updated_at),
        }
      );
    },
    async findUserByLogin(login) {
      const u = await whenUnlocked(() => userByLogin.get(login, login));
      return (
        u && {
          ...u,
          emailVerified: u.emailVerified === 1,
          active: u.active === 1,
          isStaff: u.isStaff === 1,
          isAdmin: u.isAdmin === 1,
          isDeveloper: u.isDeveloper === 1,
          passwordUnproven: u.passwordUnproven === 1,
          lastLoginAt: u.lastLoginAt === null ? null : new Date(u.lastLoginAt),
          createdAt: new Date(u.createdAt),
          updatedAt: new Date(u.updatedAt),
        }
      );
    },
    // At once, not grouped, as consume: the answer decides whether the attempt may go on.
    async takeRateLimits(keys, windowMs): Promise<RateLimitRow[]> {
      await commits.released();
      checkpointer.wake();
      const at = new Date();
      const params = { keys: JSON.stringify(keys), now: toText(at)!, expire: toText(new Date(at.getTime() + windowMs))! };
      const rows = await whenUnlocked(() => takeCounters.all(params));
      return rows.map((r) => ({ key: r.key, points: r.points, expire: r.expire === null ? null : new Date(r.expire) }));
    },
    returnRateLimits: (r) => write(() => returnCounters(r)),
    recordLogin: (userId, at, passwordHash) => write(() => lastLogin.run({ id: userId, at: toText(at)!, hash: passwordHash ?? null })),
    insertAuditEvent: (e) =>
      write(() => auditInsert.run({ ...e, detail: e.detail === null ? null : JSON.stringify(e.detail), createdAt: toText(e.createdAt) })),
    async close() {
      // Writes still waiting for their group are committed first (a commit wakes the checkpointer).
      await commits.drain();
      await checkpointer.stop();
      db.close();
    },
  };
}
