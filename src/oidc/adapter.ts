import { errors, type Adapter, type AdapterPayload } from 'oidc-provider';
import type { ClientRecord, LiveRow, OidcStore } from '../db/oidc-store.js';
import { purgeInBatches, type PurgeOptions } from '../db/purge.js';
import { findUnstorable } from '../db/storable.js';
import { createTtlCache } from '../db/ttl-cache.js';

// Models whose rows belong to a grant and are removed by revokeByGrantId (as in oidc-provider's
// memory adapter, the reference for this contract).
const GRANTABLE = ['AccessToken', 'AuthorizationCode', 'RefreshToken', 'DeviceCode', 'BackchannelAuthenticationRequest', 'PreAuthorizedCode'] as const;
const isGrantable = (model: string) => (GRANTABLE as readonly string[]).includes(model);

// Token values come from clients; one holding a NUL cannot exist (and PostgreSQL would reject it).
export const impossible = (value: string) => value.includes('\u0000');

const toPayload = (row: LiveRow | undefined): AdapterPayload | undefined =>
  row && ((row.consumed ? { ...row.payload, consumed: row.consumed } : row.payload) as AdapterPayload);

/**
 * The account a row belongs to, so that ending a user's sessions finds it. An interaction names
 * its account once a login finished in it (or its session had one): a sign-in whose password
 * was checked before a reset must not be completed after it.
 */
function accountOf(model: string, payload: AdapterPayload) {
  if (model !== 'Interaction') return payload.accountId ?? null;
  const { result, session } = payload as { result?: { login?: { accountId?: string } }; session?: { accountId?: string } };
  return result?.login?.accountId ?? session?.accountId ?? null;
}

/** Everything but clients: one table keyed by (model, id), with real columns for every lookup. */
class PayloadAdapter implements Adapter {
  constructor(
    private readonly store: OidcStore,
    private readonly model: string,
    private readonly consumedRetentionMs: number,
  ) {}

  async upsert(id: string, payload: AdapterPayload, expiresIn?: number) {
    const json = JSON.stringify(payload);
    // Request parameters the provider keeps (a pushed request's state, say) may hold a NUL, which
    // PostgreSQL cannot store: refuse the request as the provider refuses bad input. JSON writes
    // only a NUL or a lone surrogate as these escapes; the walk rules out a literal "\u" in text.
    if (/\\u(?:0000|d[89a-f])/.test(json)) {
      const problem = findUnstorable(payload);
      if (problem) throw new errors.InvalidRequest(problem.message);
    }
    await this.store.upsert(this.model, id, json, {
      grantId: isGrantable(this.model) ? (payload.grantId ?? null) : null,
      uid: payload.uid ?? null,
      userCode: payload.userCode ?? null,
      accountId: accountOf(this.model, payload),
      clientId: payload.clientId ?? null,
      expiresAt: typeof expiresIn === 'number' ? new Date(Date.now() + expiresIn * 1000) : null,
      consumedAt: payload.consumed ? new Date(Number(payload.consumed) * 1000) : null,
    });
  }

  async find(id: string) {
    return impossible(id) ? undefined : toPayload(await this.store.find(this.model, id));
  }

  async findByUid(uid: string) {
    return impossible(uid) ? undefined : toPayload(await this.store.findBy(this.model, 'uid', uid));
  }

  async findByUserCode(userCode: string) {
    return impossible(userCode) ? undefined : toPayload(await this.store.findBy(this.model, 'user_code', userCode));
  }

  // A consumed refresh token or code is kept a while so a replay is recognised (and its grant
  // revoked), then purged like an expired row.
  async consume(id: string) {
    if (await this.store.consume(this.model, id, new Date(Date.now() + this.consumedRetentionMs))) return;
    // Another request consumed it since this one read it: a replay, answered as the provider
    // answers one (RFC 6749 4.1.2: deny, and revoke what the grant issued).
    if (this.model === 'PushedAuthorizationRequest') throw new errors.InvalidRequestUri('request_uri is invalid, expired, or was already used');
    const grantId = (await this.store.find(this.model, id))?.payload.grantId;
    if (typeof grantId === 'string' && isGrantable(this.model)) {
      await Promise.all([this.store.revokeByGrantId(grantId, GRANTABLE), this.store.destroy('Grant', grantId)]);
    }
    throw new errors.InvalidGrant(`${this.model} already consumed`);
  }
  destroy = (id: string) => this.store.destroy(this.model, id);
  revokeByGrantId = (grantId: string) => this.store.revokeByGrantId(grantId, GRANTABLE);

  async findWithGrant(id: string): Promise<TokenWithGrant | undefined> {
    if (impossible(id)) return undefined;
    const [row] = await this.store.findMany([{ model: this.model, id }]);
    return row && { token: toPayload(row)!, grant: toPayload(row.grant ?? undefined), session: row.session === undefined ? undefined : (toPayload(row.session ?? undefined) ?? null) };
  }
}

/**
 * A token and the grant and session it names. `grant` is undefined when it names none or that
 * grant is not live; `session` is null when the session it names is not live, and undefined when
 * it names none or the read did not bring it (a token answered from the token cache).
 */
export type TokenWithGrant = { token: AdapterPayload; grant?: AdapterPayload; session?: AdapterPayload | null };

/**
 * A token of `model` (provider.AccessToken, say) and its grant, read in one statement through the
 * provider's adapter and the token cache (see FoundRow), for a check made outside the provider's
 * requests, whose reads no unit of work batches.
 */
export function findWithGrant(model: { adapter: Adapter }, id: string): Promise<TokenWithGrant | undefined> {
  const { adapter } = model;
  if (!(adapter instanceof PayloadAdapter)) throw new TypeError('not a token model of a provider built with createOidcAdapter');
  return adapter.findWithGrant(id);
}

// A change to a client (secret rotation, redirect URIs, deletion) applies at once in the process
// that made it and within this bound in every other process.
export const CLIENT_CACHE_MS = 5_000;

/** Client metadata by id, cached for CLIENT_CACHE_MS: clients are read on every token request. */
export function createClientCache(store: OidcStore) {
  const cache = createTtlCache<ClientRecord | undefined>((clientId) => store.findClient(clientId), CLIENT_CACHE_MS);
  return { get: cache.get, invalidate: (clientId: string) => cache.invalidate(clientId) };
}
export type ClientCache = ReturnType<typeof createClientCache>;

/** Clients are managed in their own table (CLI, apps API, console) and are read-only here. */
class ClientAdapter implements Adapter {
  constructor(private readonly clients: ClientCache) {}

  async find(id: string) {
    if (impossible(id)) return undefined;
    const row = await this.clients.get(id);
    if (!row) return undefined;
    return { ...row.metadata, client_id: id, trusted: row.trusted, allowed_resources: row.resources.split(' ').filter(Boolean) } as unknown as AdapterPayload;
  }

  async upsert() {
    throw new Error('clients are managed by Latch, not through the provider');
  }
  async destroy() {
    throw new Error('clients are managed by Latch, not through the provider');
  }
  async findByUid() {
    return undefined;
  }
  async findByUserCode() {
    return undefined;
  }
  async consume() {}
  async revokeByGrantId() {}
}

/** Consumed rows are kept `consumedRetentionSeconds` (CONSUMED_TOKEN_RETENTION), then purged. */
export function createOidcAdapter(store: OidcStore, clients: ClientCache, consumedRetentionSeconds: number) {
  return (model: string): Adapter =>
    model === 'Client' ? new ClientAdapter(clients) : new PayloadAdapter(store, model, consumedRetentionSeconds * 1000);
}

/** Deletes rows expired for longer than the provider's clock tolerance; returns how many went. */
export const purgeExpired = (store: OidcStore, options?: PurgeOptions) =>
  purgeInBatches((limit) => store.purgeExpired(new Date(Date.now() - 60_000), limit), options);
