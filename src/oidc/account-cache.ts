import type { Db } from '../db/prisma.js';
import type { AccountRecord, OidcStore } from '../db/oidc-store.js';
import { createTtlCache } from '../db/ttl-cache.js';

// A change to a user (claims, disabled, deleted) applies within this bound in every process, the
// same bound as clients; in the process that made it, at once (a write inside an interactive
// transaction drops the entry before its commit, so a read racing the commit may keep the old
// one for the bound). Disabling or deleting a user also revokes their sessions and tokens at once.
export const ACCOUNT_CACHE_MS = 5_000;

/**
 * Users as OIDC accounts, by id. A sign-in reads the account at each step (after login, after
 * consent, at the code exchange) and userinfo and refresh read it on every call.
 */
export function createAccountCache(store: OidcStore, ttlMs = ACCOUNT_CACHE_MS) {
  return createTtlCache<AccountRecord | undefined>((userId) => store.findAccount(userId), ttlMs);
}
export type AccountCache = ReturnType<typeof createAccountCache>;

const USER_WRITES = new Set(['update', 'updateMany', 'updateManyAndReturn', 'upsert', 'delete', 'deleteMany']);

/** Every write to users through this client drops the cached account (all of them when not by id). */
export function invalidateAccountsOnWrite(db: Db, accounts: AccountCache): Db {
  return db.$extends({
    query: {
      user: {
        async $allOperations({ operation, args, query }: { operation: string; args: unknown; query: (a: unknown) => Promise<unknown> }) {
          const result = await query(args);
          if (USER_WRITES.has(operation)) {
            const id = (args as { where?: { id?: unknown } }).where?.id;
            accounts.invalidate(typeof id === 'string' ? id : undefined);
          }
          return result;
        },
      },
    },
  }) as unknown as Db;
}
