import type { FoundRow, LiveRow, OidcStore, RowKey } from './oidc-store.js';

// A revoked access token is refused at once by the process that revoked it (a write through this
// process of a token, or of the grant or session it is checked against, drops it from the cache)
// and within this bound by every other process, as RFC 7009 (2.2) allows for servers that share a
// store.
export const TOKEN_CACHE_MS = 1_000;

// Kept: access tokens and client-credentials tokens, written once when issued and then only
// destroyed (refresh tokens and codes are consumed, so they are always read from the store).
const CACHED = new Set(['AccessToken', 'ClientCredentials']);
// oidc-provider looks a presented token up as these three at once. Token values are random, so a
// value known to be one kind of token is none of the others.
const LOOKED_UP_TOGETHER = new Set([...CACHED, 'RefreshToken']);

type Cached = { json: string; consumed: number | null };
// grantId, sessionId: the ids (jti) the token's grant and session are stored under.
type Entry = Cached & { at: number; model: string; grant?: Cached; grantId?: string; session?: Cached; sessionId?: string };

const MISS = Symbol('miss');
const parse = (c: Cached) => ({ payload: JSON.parse(c.json) as Record<string, unknown>, consumed: c.consumed });
const serialize = (row: LiveRow): Cached => ({ json: JSON.stringify(row.payload), consumed: row.consumed });

/**
 * Resource servers introspect the same token on every request they serve, and userinfo reads it
 * on every call: the token, its grant and its session (the provider checks a token against both)
 * are kept in memory for TOKEN_CACHE_MS from when their read began, as JSON (each read gets
 * objects of its own). Only findMany is cached: the provider's reads go through it (see
 * unit-of-work.ts).
 */
export function cacheTokenReads(store: OidcStore, ttlMs = TOKEN_CACHE_MS, maxEntries = 10_000) {
  const entries = new Map<string, Entry>();
  // Bumped by every write of a kept kind, a grant or a session: a read that started before one must
  // not keep what it read.
  let generation = 0;
  const clear = () => {
    generation += 1;
    entries.clear();
  };
  const written = (model: string, id: string) => {
    if (CACHED.has(model)) {
      generation += 1;
      entries.delete(id);
    } else if (model === 'Grant' || model === 'Session') {
      generation += 1;
      // The tokens checked against this grant or session (a scan: these writes come with
      // sign-ins and sign-outs, not with the token reads the cache is for).
      const field = model === 'Grant' ? 'grantId' : 'sessionId';
      for (const [tokenId, entry] of entries) if (entry[field] === id) entries.delete(tokenId);
    }
  };

  function lookup({ model, id }: RowKey): FoundRow | undefined | typeof MISS {
    if (!LOOKED_UP_TOGETHER.has(model)) return MISS;
    const hit = entries.get(id);
    if (!hit || Date.now() - hit.at >= ttlMs) return MISS;
    if (hit.model !== model) return undefined;
    const row: FoundRow = parse(hit);
    if (hit.grant) row.grant = parse(hit.grant);
    if (hit.session) row.session = parse(hit.session);
    return row;
  }

  /** `readAt`: when the read began, so that what it returned is kept no longer than the bound. */
  function keep({ model, id }: RowKey, row: FoundRow | undefined, readAt: number) {
    // A token whose grant is gone is dead: read again, not kept.
    if (!row || !CACHED.has(model) || row.consumed !== null || row.grant === null) return;
    const now = Date.now();
    entries.delete(id);
    // Entries are in the order they were kept (near enough that of their reads' start): those past
    // the bound, and past the limit the oldest, go from the front. One left behind a newer one a
    // little longer is never answered: lookup checks its age.
    for (const [oldId, old] of entries) {
      if (now - old.at < ttlMs && entries.size < maxEntries) break;
      entries.delete(oldId);
    }
    const entry: Entry = { at: readAt, model, ...serialize(row) };
    if (row.grant) {
      entry.grant = serialize(row.grant);
      entry.grantId = row.grant.payload.jti as string;
    }
    // A session that is gone is not kept: whether that ends the token is the provider's to say, and
    // a session written later under the same uid would have an id the cache cannot know.
    if (row.session) {
      entry.session = serialize(row.session);
      entry.sessionId = row.session.payload.jti as string;
    }
    entries.set(id, entry);
  }

  const cached: OidcStore = {
    ...store,
    async findMany(keys) {
      const rows: (FoundRow | undefined)[] = [];
      const missing: number[] = [];
      keys.forEach((key, i) => {
        const hit = lookup(key);
        if (hit === MISS) missing.push(i);
        else rows[i] = hit;
      });
      if (!missing.length) return rows;
      const [startedAt, readAt] = [generation, Date.now()];
      const read = await store.findMany(missing.map((i) => keys[i]!));
      missing.forEach((i, j) => (rows[i] = read[j]));
      if (startedAt === generation) missing.forEach((i, j) => keep(keys[i]!, read[j], readAt));
      return rows;
    },
    async upsert(model, id, json, columns) {
      await store.upsert(model, id, json, columns);
      written(model, id);
    },
    async destroy(model, id) {
      await store.destroy(model, id);
      written(model, id);
    },
    async consume(model, id, keepUntil, at) {
      const consumed = await store.consume(model, id, keepUntil, at);
      written(model, id);
      return consumed;
    },
    async revokeByGrantId(grantId, models) {
      await store.revokeByGrantId(grantId, models);
      clear();
    },
    async writeBatch(writes) {
      await store.writeBatch(writes);
      for (const w of writes) written(w.model, w.id);
    },
  };
  return { store: cached, clear, size: () => entries.size };
}
export type TokenCache = ReturnType<typeof cacheTokenReads>;
