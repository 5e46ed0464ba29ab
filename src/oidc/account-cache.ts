import type { AccountRecord, OidcStore } from '../db/oidc-store.js';
import { createTtlCache } from '../db/ttl-cache.js';

// A change to a user (claims, disabled, deleted) applies within this bound in every process, the
// same bound as clients; in the process that made it, at once (a write inside an interactive
// transaction drops the entry before its commit, so a read racing the commit may keep the old
// one for the bound). Disabling or deleting a user also revokes their sessions and tokens at once
// (refused by other processes within TOKEN_CACHE_MS, see token-cache.ts).
export const ACCOUNT_CACHE_MS = 5_000;

/**
 * Users as OIDC accounts, by id. A sign-in reads the account at each step (after login, after
 * consent, at the code exchange) and userinfo and refresh read it on every call.
 */
export function createAccountCache(store: OidcStore, ttlMs = ACCOUNT_CACHE_MS) {
  return createTtlCache<AccountRecord | undefined>((userId) => store.findAccount(userId), ttlMs);
}
export type AccountCache = ReturnType<typeof createAccountCache>;
