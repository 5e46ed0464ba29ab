import type { Db } from '../db/prisma.js';

// Everything that keeps a user signed in somewhere, or would: a sign-in whose password was checked
// (an Interaction with its login) is completed without asking again.
const SIGNED_IN = ['Session', 'Interaction', 'Grant', 'AccessToken', 'RefreshToken', 'AuthorizationCode', 'DeviceCode', 'BackchannelAuthenticationRequest'];

/**
 * Ends a user's sessions and revokes their grants and tokens at once, except the browser session
 * (by uid) or the grant (by id) the user is acting from, when given.
 */
export async function revokeUserSessions(prisma: Db, userId: string, keep: { sessionUid?: string; grantId?: string } = {}) {
  const { count } = await prisma.oidcPayload.deleteMany({
    where: {
      accountId: userId,
      model: { in: SIGNED_IN },
      NOT: [
        ...(keep.sessionUid ? [{ model: 'Session', uid: keep.sessionUid }] : []),
        // `grant_id = ?` alone is NULL for sessions and grants, and NOT NULL keeps them all.
        ...(keep.grantId ? [{ model: 'Grant', id: keep.grantId }, { AND: [{ grantId: { not: null } }, { grantId: keep.grantId }] }] : []),
      ],
    },
  });
  return count;
}
