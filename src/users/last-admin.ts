import type { Db } from '../db/prisma.js';
import type { Provider } from '../db/url.js';
import { withLock } from '../db/lock.js';
import { AppError } from '../http/problem.js';
import type { User } from './users.service.js';

/**
 * Runs `change` in one transaction, refusing it when it would take admin rights from the last
 * active admin (`losesAdmin`: a demotion, disabling or deletion of `target`, by an admin or by the
 * admin themselves). For an active admin it runs under a lock, so that two such changes at once
 * cannot both pass the check.
 */
export async function guardLastAdmin<T>(
  prisma: Db,
  provider: Provider,
  target: Pick<User, 'id' | 'isAdmin' | 'active'>,
  losesAdmin: boolean,
  change: (tx: Db) => Promise<T>,
): Promise<T> {
  if (!losesAdmin || !target.isAdmin || !target.active) return prisma.$transaction((tx) => change(tx as Db));
  return withLock(prisma, provider, 'admins', async (tx) => {
    const others = await tx.user.count({ where: { isAdmin: true, active: true, id: { not: target.id } } });
    if (others === 0) throw new AppError('LAST_ADMIN');
    return change(tx);
  });
}

/** Deletes a user's row and their linked upstream identities (inside `guardLastAdmin`'s transaction). */
export async function deleteUserRows(tx: Db, userId: string) {
  await tx.federatedIdentity.deleteMany({ where: { userId } });
  await tx.user.delete({ where: { id: userId } });
}
