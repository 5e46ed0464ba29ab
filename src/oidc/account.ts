import type { Account, FindAccount } from 'oidc-provider';
import type { AccountRecord } from '../db/oidc-store.js';
import type { AccountCache } from './account-cache.js';

/** Standard claims of a user, for the scopes granted. */
export function userClaims(user: AccountRecord) {
  return {
    sub: user.id,
    name: user.name ?? undefined,
    given_name: user.givenName ?? undefined,
    family_name: user.familyName ?? undefined,
    preferred_username: user.username ?? undefined,
    picture: user.picture ?? undefined,
    updated_at: Math.floor(user.updatedAt.getTime() / 1000),
    email: user.email,
    email_verified: user.emailVerified,
  };
}

/**
 * Maps users to OIDC accounts (a hot path: userinfo, token and ID token issuance). Disabled or
 * deleted users have no account: their sessions end and their tokens stop working.
 */
export function createFindAccount(accounts: AccountCache): FindAccount {
  return async (_ctx, sub): Promise<Account | undefined> => {
    if (sub.includes('\u0000')) return undefined;
    const user = await accounts.get(sub);
    if (!user?.active) return undefined;
    return { accountId: user.id, claims: () => userClaims(user) };
  };
}
