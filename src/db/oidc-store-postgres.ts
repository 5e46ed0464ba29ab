import pg from 'pg';
import type { AccountRecord, ClientRecord, LiveRow, OidcStore, PayloadColumns } from './oidc-store.js';

// Columns are timestamp(3) without time zone holding UTC (as Prisma writes them): times go in as
// ISO strings (the offset is ignored, the value kept) and come out as epoch numbers, so neither
// side depends on the process's time zone. Statements are named, so each connection prepares them once.
const iso = (d: Date | null) => (d ? d.toISOString() : null);
const LIVE = '(expires_at IS NULL OR expires_at > $3::timestamp)';
const SELECT = 'SELECT payload, EXTRACT(EPOCH FROM consumed_at)::bigint AS consumed FROM oidc_payloads';

type PayloadRow = { payload: Record<string, unknown>; consumed: string | null };

export function createPostgresOidcStore(url: string, max: number, onIdleError: (err: Error) => void): OidcStore {
  const pool = new pg.Pool({ connectionString: url, max });
  // An idle connection can be cut (database restart, failover): pg reports it here, and the pool
  // replaces the connection on next use. Without a listener the process would crash.
  pool.on('error', onIdleError);
  const query = async <R extends pg.QueryResultRow>(name: string, text: string, values: unknown[]) => (await pool.query<R>({ name, text, values })).rows;
  const toLive = (row: PayloadRow | undefined): LiveRow | undefined => row && { payload: row.payload, consumed: row.consumed === null ? null : Number(row.consumed) };
  const now = () => new Date().toISOString();

  return {
    async upsert(model, id, payload, c: PayloadColumns) {
      await query(
        'oidc_upsert',
        `INSERT INTO oidc_payloads (model, id, payload, grant_id, uid, user_code, account_id, client_id, expires_at, consumed_at)
         VALUES ($1, $2, $3::jsonb, $4, $5, $6, $7, $8, $9::timestamp, $10::timestamp)
         ON CONFLICT (model, id) DO UPDATE SET payload = EXCLUDED.payload, grant_id = EXCLUDED.grant_id, uid = EXCLUDED.uid,
           user_code = EXCLUDED.user_code, account_id = EXCLUDED.account_id, client_id = EXCLUDED.client_id,
           expires_at = EXCLUDED.expires_at, consumed_at = EXCLUDED.consumed_at`,
        [model, id, JSON.stringify(payload), c.grantId, c.uid, c.userCode, c.accountId, c.clientId, iso(c.expiresAt), iso(c.consumedAt)],
      );
    },
    find: async (model, id) => toLive((await query<PayloadRow>('oidc_find', `${SELECT} WHERE model = $1 AND id = $2 AND ${LIVE}`, [model, id, now()]))[0]),
    async findBy(model, column, value) {
      const name = column === 'uid' ? 'oidc_find_uid' : 'oidc_find_user_code';
      return toLive((await query<PayloadRow>(name, `${SELECT} WHERE model = $1 AND ${column} = $2 AND ${LIVE} LIMIT 1`, [model, value, now()]))[0]);
    },
    async consume(model, id) {
      await query('oidc_consume', 'UPDATE oidc_payloads SET consumed_at = $3::timestamp WHERE model = $1 AND id = $2', [model, id, now()]);
    },
    async destroy(model, id) {
      await query('oidc_destroy', 'DELETE FROM oidc_payloads WHERE model = $1 AND id = $2', [model, id]);
    },
    async revokeByGrantId(grantId, models) {
      await query('oidc_revoke', 'DELETE FROM oidc_payloads WHERE grant_id = $1 AND model = ANY($2)', [grantId, models]);
    },
    async findClient(clientId): Promise<ClientRecord | undefined> {
      const [row] = await query<{ metadata: Record<string, unknown>; trusted: boolean; resources: string }>(
        'oidc_client',
        'SELECT metadata, trusted, resources FROM clients WHERE client_id = $1',
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
    close: () => pool.end(),
  };
}
