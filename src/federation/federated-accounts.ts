import type { Audit, RequestMeta } from '../audit/audit.service.js';
import type { Db } from '../db/prisma.js';
import { isUniqueViolation } from '../db/errors.js';
import { AppError } from '../http/problem.js';
import { normalizeLogin, type User, type UsersService } from '../users/users.service.js';
import type { Connection } from './connections.service.js';
import type { UpstreamProfile } from './upstream.js';

/** What an upstream sign-in leads to locally. */
export type FederatedOutcome =
  | { kind: 'signed-in'; user: User; created: boolean }
  // A local account has the upstream's email: linking needs proof of that account, and is only
  // offered when the upstream verified the address.
  | { kind: 'link'; user: User; emailVerified: boolean }
  | { kind: 'refused'; reason: RefusalReason };

export type RefusalReason = 'disabled' | 'no_email' | 'registration_closed' | 'unverified_email' | 'email_not_verified' | 'confirmation_required';

/**
 * Accounts behind upstream sign-ins. An upstream account is found by (connection, subject), never
 * by email alone: an email only ever leads to the linking step.
 */
export function createFederatedAccounts(deps: { prisma: Db; users: UsersService; audit: Audit; registrationOpen: () => boolean; allowUnverifiedLogin: () => boolean }) {
  const { prisma, users, audit } = deps;

  async function touch(identityId: string, userId: string) {
    const now = new Date();
    await prisma.$transaction([
      prisma.federatedIdentity.update({ where: { id: identityId }, data: { lastLoginAt: now } }),
      prisma.user.update({ where: { id: userId }, data: { lastLoginAt: now } }),
    ]);
  }

  async function createUser(connection: Connection, profile: UpstreamProfile & { email: string }) {
    const user = await users.create({
      email: profile.email,
      name: profile.name,
      givenName: profile.givenName,
      familyName: profile.familyName,
      emailVerified: profile.emailVerified,
    });
    const withPicture = profile.picture ? await prisma.user.update({ where: { id: user.id }, data: { picture: profile.picture } }) : user;
    const identity = await prisma.federatedIdentity.create({ data: { connectionId: connection.id, subject: profile.subject, userId: user.id, email: profile.email, lastLoginAt: new Date() } });
    await prisma.user.update({ where: { id: user.id }, data: { lastLoginAt: identity.lastLoginAt } });
    return withPicture;
  }

  return {
    async resolve(connection: Connection, profile: UpstreamProfile, meta: RequestMeta): Promise<FederatedOutcome> {
      const identity = await prisma.federatedIdentity.findUnique({ where: { connectionId_subject: { connectionId: connection.id, subject: profile.subject } } });
      if (identity) {
        const user = await users.findById(identity.userId);
        if (user && !user.active) return { kind: 'refused', reason: 'disabled' };
        if (user && !user.emailVerified && !deps.allowUnverifiedLogin()) return { kind: 'refused', reason: 'email_not_verified' };
        if (user) {
          await touch(identity.id, user.id);
          await audit.record('login.success', { userId: user.id, detail: { method: 'federated', connection: connection.slug }, ...meta });
          return { kind: 'signed-in', user, created: false };
        }
        // Left behind by a deleted user: start afresh.
        await prisma.federatedIdentity.delete({ where: { id: identity.id } });
      }
      if (!profile.email) return { kind: 'refused', reason: 'no_email' };
      const local = await prisma.user.findUnique({ where: { emailNormalized: normalizeLogin(profile.email) } });
      if (local) return local.active ? { kind: 'link', user: local, emailVerified: profile.emailVerified } : { kind: 'refused', reason: 'disabled' };
      if (!deps.registrationOpen()) return { kind: 'refused', reason: 'registration_closed' };
      // An app's own upstream is the app developer's choice: its word that an address is verified
      // is not Latch's. Its accounts start unconfirmed (and its sessions serve that app only).
      // Any other upstream must have verified the address: an account made for an address nobody
      // proved would wait for its owner, who could never be sure it was theirs alone.
      const appOwn = connection.ownerClientId !== null;
      if (!appOwn && !profile.emailVerified) return { kind: 'refused', reason: 'unverified_email' };
      if (appOwn && !deps.allowUnverifiedLogin()) return { kind: 'refused', reason: 'confirmation_required' };
      try {
        const user = await createUser(connection, { ...profile, email: profile.email, emailVerified: !appOwn });
        await audit.record('registration', { userId: user.id, detail: { method: 'federated', connection: connection.slug }, ...meta });
        await audit.record('login.success', { userId: user.id, detail: { method: 'federated', connection: connection.slug }, ...meta });
        return { kind: 'signed-in', user, created: true };
      } catch (err) {
        // Another sign-in created the same account a moment ago: go through the checks again.
        if (err instanceof AppError && err.code === 'EMAIL_TAKEN') return this.resolve(connection, profile, meta);
        if (isUniqueViolation(err)) return this.resolve(connection, profile, meta);
        throw err;
      }
    },

    /** Links an upstream account to a user who has just proved the local account. */
    async link(userId: string, connection: Connection, profile: Pick<UpstreamProfile, 'subject' | 'email'>, meta: RequestMeta) {
      try {
        await prisma.federatedIdentity.create({ data: { connectionId: connection.id, subject: profile.subject, userId, email: profile.email ?? null, lastLoginAt: new Date() } });
      } catch (err) {
        if (!isUniqueViolation(err)) throw err;
        const existing = await prisma.federatedIdentity.findUnique({ where: { connectionId_subject: { connectionId: connection.id, subject: profile.subject } } });
        if (existing?.userId !== userId) throw new AppError('FORBIDDEN', `This ${connection.name} account is already linked to another user.`);
      }
      await audit.record('federated.linked', { userId, detail: { connection: connection.slug }, ...meta });
    },

    /** The user's linked upstream accounts, with their connection's name. */
    async listForUser(userId: string) {
      const identities = await prisma.federatedIdentity.findMany({ where: { userId }, orderBy: [{ createdAt: 'asc' }, { id: 'asc' }] });
      const connections = await prisma.connection.findMany({ where: { id: { in: identities.map((i) => i.connectionId) } } });
      const byId = new Map(connections.map((c) => [c.id, c]));
      return identities.map((i) => ({
        id: i.id,
        connection: byId.get(i.connectionId)?.name ?? 'Removed provider',
        kind: byId.get(i.connectionId)?.kind ?? null,
        email: i.email,
        createdAt: i.createdAt,
        lastLoginAt: i.lastLoginAt,
      }));
    },

    /** Removes a linked account, unless it is the user's last way to sign in. */
    async unlink(user: User, identityId: string, meta: RequestMeta) {
      const identity = await prisma.federatedIdentity.findFirst({ where: { id: identityId, userId: user.id } });
      if (!identity) throw new AppError('NOT_FOUND');
      const others = await prisma.federatedIdentity.count({ where: { userId: user.id, id: { not: identityId } } });
      if (!user.passwordHash && others === 0) throw new AppError('LAST_SIGN_IN_METHOD');
      await prisma.federatedIdentity.delete({ where: { id: identityId } });
      const connection = await prisma.connection.findUnique({ where: { id: identity.connectionId }, select: { slug: true } });
      await audit.record('federated.unlinked', { userId: user.id, detail: { connection: connection?.slug, connectionId: identity.connectionId }, ...meta });
    },
  };
}

export type FederatedAccounts = ReturnType<typeof createFederatedAccounts>;
