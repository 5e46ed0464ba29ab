import type { AuditRow, RateLimitReturn } from './oidc-store.js';
import { epochMs, iso } from './postgres-time.js';

/** A named statement and its values, as the PostgreSQL store runs them (prepared once per connection). */
type Statement = [name: string, text: string, values: unknown[]];

// Throttle counters as rate-limiter-flexible keeps them: a counter whose window has passed
// (expire <= now) starts again with this point, any other gains one; concurrent statements each
// take their own point (ON CONFLICT waits for the other's row). Rows are locked in key order, so
// two attempts never hold each other's counter (a deadlock).
const TAKE_COUNTERS = `INSERT INTO rate_limits (key, points, expire)
  SELECT DISTINCT k, 1, $2::timestamp FROM unnest($1::text[]) AS k ORDER BY k
  ON CONFLICT (key) DO UPDATE SET
    points = CASE WHEN rate_limits.expire <= $3::timestamp THEN 1 ELSE rate_limits.points + 1 END,
    expire = CASE WHEN rate_limits.expire <= $3::timestamp THEN EXCLUDED.expire ELSE rate_limits.expire END
  RETURNING key, points, (${epochMs('expire')})::bigint AS expire`;
// Counters cleared ($c), and points given back ($k, $e: key and window; several for one key add
// up), only in the window they were taken in. Every row is locked first, in key order as an
// attempt takes them, so a return and an attempt never wait for each other both (a deadlock).
const returnCounters = (c: number, k: number, e: number) => `locked AS (SELECT 1 FROM rate_limits WHERE key = ANY($${c}::text[] || $${k}::text[]) ORDER BY key FOR UPDATE),
  cleared AS (DELETE FROM rate_limits WHERE key = ANY($${c}::text[]) AND (SELECT count(*) FROM locked) >= 0),
  given_back AS (
    UPDATE rate_limits r SET points = GREATEST(r.points - g.n, 0)
    FROM (SELECT key, expire, count(*)::int AS n FROM unnest($${k}::text[], $${e}::timestamp[]) AS b(key, expire) GROUP BY key, expire) g
    WHERE r.key = g.key AND r.expire IS NOT DISTINCT FROM g.expire AND r.key <> ALL($${c}::text[]) AND (SELECT count(*) FROM locked) >= 0)`;
const RETURN_COUNTERS = `WITH ${returnCounters(1, 2, 3)} SELECT 1`;
const returnValues = (rs: readonly RateLimitReturn[]) => {
  const giveBack = rs.flatMap((r) => r.giveBack);
  return [[...new Set(rs.flatMap((r) => r.clear))], giveBack.map((g) => g.key), giveBack.map((g) => iso(g.expire))];
};

// A sign-in's own writes, its user's last sign-in, its audit event and its throttle counters'
// return, are made at once: a group of them (with those of the sign-ins that end beside it) is one
// statement. A user signed in twice in one group keeps the later time and the last new hash, as
// the writes one after another would.
export type SideWrite =
  | { kind: 'login'; userId: string; at: Date; passwordHash: string | null }
  | { kind: 'audit'; event: AuditRow }
  | { kind: 'counters'; r: RateLimitReturn };
const AUDIT_COLUMNS = 'id, event, user_id, actor_id, ip, user_agent, detail, created_at';
const SIDE_BATCH = `WITH logins AS (
    UPDATE users u SET last_login_at = l.at, password_hash = COALESCE(l.hash, u.password_hash)
    FROM unnest($1::text[], $2::timestamp[], $3::text[]) AS l(id, at, hash) WHERE u.id = l.id),
  ${returnCounters(12, 13, 14)}
  INSERT INTO audit_events (${AUDIT_COLUMNS})
  SELECT * FROM unnest($4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::jsonb[], $11::timestamp[])`;

function sideBatchValues(writes: readonly SideWrite[]) {
  const logins = new Map<string, { at: Date; passwordHash: string | null }>();
  const audits: AuditRow[] = [];
  const counters: RateLimitReturn[] = [];
  for (const w of writes) {
    if (w.kind === 'audit') audits.push(w.event);
    else if (w.kind === 'counters') counters.push(w.r);
    else logins.set(w.userId, { at: w.at, passwordHash: w.passwordHash ?? logins.get(w.userId)?.passwordHash ?? null });
  }
  const users = [...logins];
  return [
    users.map(([id]) => id),
    users.map(([, l]) => iso(l.at)),
    users.map(([, l]) => l.passwordHash),
    ...(['id', 'event', 'userId', 'actorId', 'ip', 'userAgent'] as const).map((column) => audits.map((e) => e[column])),
    audits.map((e) => (e.detail === null ? null : JSON.stringify(e.detail))),
    audits.map((e) => iso(e.createdAt)),
    ...returnValues(counters),
  ];
}

/** The statement that takes one point on each of `keys` (an attempt's counters) at `at`. */
export const takeCounters = (keys: readonly string[], at: Date, windowMs: number): Statement => ['rate_limits_take', TAKE_COUNTERS, [keys, iso(new Date(at.getTime() + windowMs)), iso(at)]];

/** The statement of a group of side writes (see SideWrite). */
export const sideBatch = (group: readonly SideWrite[]): Statement => ['side_batch', SIDE_BATCH, sideBatchValues(group)];

/** The statement of one side write, alone in its group or retried on its own after its group failed. */
export function sideStatement(w: SideWrite): Statement {
  if (w.kind === 'counters') return ['rate_limits_return', RETURN_COUNTERS, returnValues([w.r])];
  if (w.kind === 'login') return ['record_login', 'UPDATE users SET last_login_at = $2::timestamp, password_hash = COALESCE($3, password_hash) WHERE id = $1', [w.userId, iso(w.at), w.passwordHash]];
  const e = w.event;
  return [
    'audit_insert',
    `INSERT INTO audit_events (${AUDIT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8::timestamp)`,
    [e.id, e.event, e.userId, e.actorId, e.ip, e.userAgent, e.detail === null ? null : JSON.stringify(e.detail), iso(e.createdAt)],
  ];
}
