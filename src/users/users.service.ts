import { z } from 'zod';
import type { Db } from '../db/prisma.js';
import type { User } from '../generated/sqlite/client.js';
import type { PasswordHasher } from '../passwords/passwords.js';
import { AppError } from '../http/problem.js';
import { isUniqueViolation, violatedFields } from '../db/errors.js';

export type { User };

export const NewUser = z.object({
  email: z.email().max(254),
  username: z
    .string()
    .trim()
    .min(2)
    .max(64)
    .regex(/^[a-zA-Z0-9._-]+$/, 'letters, digits, dot, dash and underscore only')
    .optional(),
  password: z.string().min(8).max(1024).optional(),
  givenName: z.string().trim().max(100).optional(),
  familyName: z.string().trim().max(100).optional(),
  name: z.string().trim().max(200).optional(),
  emailVerified: z.boolean().optional(),
  isAdmin: z.boolean().optional(),
  isStaff: z.boolean().optional(),
});
export type NewUser = z.infer<typeof NewUser>;

const nullableName = (max: number) => z.string().trim().max(max).nullable().optional();

export const ProfileUpdate = z
  .object({
    email: NewUser.shape.email.optional(),
    username: NewUser.shape.username.unwrap().nullable().optional(),
    givenName: nullableName(100),
    familyName: nullableName(100),
    name: nullableName(200),
  })
  .strict();
export type ProfileUpdate = z.infer<typeof ProfileUpdate>;

/** What the audit log compares of a user before and after an edit (theirs or an admin's): the profile and roles, as the API shows them. */
export const userAuditView = (u: User) => ({
  email: u.email,
  emailVerified: u.emailVerified,
  username: u.username,
  name: u.name,
  givenName: u.givenName,
  familyName: u.familyName,
  active: u.active,
  isAdmin: u.isAdmin,
  isStaff: u.isStaff,
  isDeveloper: u.isDeveloper,
});

export const normalizeLogin = (value: string) => value.trim().toLowerCase();

/** Two requests racing for one email or username: the database's unique index decides; answer 409. */
async function uniqueLogin<T>(write: () => Promise<T>): Promise<T> {
  try {
    return await write();
  } catch (err) {
    if (isUniqueViolation(err)) throw new AppError(violatedFields(err).includes('username') ? 'USERNAME_TAKEN' : 'EMAIL_TAKEN');
    throw err;
  }
}

export function createUsersService(prisma: Db, hasher: PasswordHasher) {
  /** Refuses (409) an edit whose new email or username another user has; changes nothing. */
  async function assertLoginsFree(user: User, input: ProfileUpdate) {
    const data = ProfileUpdate.parse(input);
    const emailChanged = data.email !== undefined && normalizeLogin(data.email) !== user.emailNormalized;
    const usernameChanged = data.username !== undefined && normalizeLogin(data.username ?? '') !== (user.usernameNormalized ?? '');
    if (!emailChanged && !(usernameChanged && data.username)) return;
    const taken = await prisma.user.findFirst({
      where: {
        id: { not: user.id },
        OR: [
          ...(emailChanged ? [{ emailNormalized: normalizeLogin(data.email!) }] : []),
          ...(usernameChanged && data.username ? [{ usernameNormalized: normalizeLogin(data.username) }] : []),
        ],
      },
      select: { emailNormalized: true },
    });
    if (taken) throw new AppError(emailChanged && taken.emailNormalized === normalizeLogin(data.email!) ? 'EMAIL_TAKEN' : 'USERNAME_TAKEN');
  }

  return {
    /** Creates a user; `registered`: they chose their password for an address nobody has proven yet. */
    async create(input: NewUser, options: { registered?: boolean } = {}): Promise<User> {
      const data = NewUser.parse(input);
      const taken = await prisma.user.findFirst({
        where: {
          OR: [
            { emailNormalized: normalizeLogin(data.email) },
            ...(data.username ? [{ usernameNormalized: normalizeLogin(data.username) }] : []),
          ],
        },
        select: { emailNormalized: true },
      });
      if (taken) {
        throw new AppError(taken.emailNormalized === normalizeLogin(data.email) ? 'EMAIL_TAKEN' : 'USERNAME_TAKEN');
      }
      const passwordHash = data.password ? await hasher.hash(data.password) : null;
      return uniqueLogin(() => prisma.user.create({
        data: {
          email: data.email.trim(),
          emailNormalized: normalizeLogin(data.email),
          username: data.username ?? null,
          usernameNormalized: data.username ? normalizeLogin(data.username) : null,
          givenName: data.givenName ?? null,
          familyName: data.familyName ?? null,
          name: data.name ?? ([data.givenName, data.familyName].filter(Boolean).join(' ') || null),
          emailVerified: data.emailVerified ?? false,
          isAdmin: data.isAdmin ?? false,
          isStaff: data.isStaff ?? false,
          passwordHash,
          passwordUnproven: Boolean(options.registered && passwordHash && !data.emailVerified),
        },
      }));
    },

    findById: (id: string) => prisma.user.findUnique({ where: { id } }),

    /** Finds a user by email or username, case-insensitively. */
    findByLogin(identifier: string) {
      const key = normalizeLogin(identifier);
      return prisma.user.findFirst({ where: { OR: [{ emailNormalized: key }, { usernameNormalized: key }] } });
    },

    count: () => prisma.user.count(),

    /** Changes profile fields; a new email address is unverified until confirmed again. */
    assertLoginsFree,

    async updateProfile(user: User, input: ProfileUpdate): Promise<{ user: User; emailChanged: boolean }> {
      const data = ProfileUpdate.parse(input);
      const emailChanged = data.email !== undefined && normalizeLogin(data.email) !== user.emailNormalized;
      // Same address in other letters: shown as typed, still verified.
      const emailRecased = data.email !== undefined && !emailChanged && data.email.trim() !== user.email;
      const usernameChanged = data.username !== undefined && normalizeLogin(data.username ?? '') !== (user.usernameNormalized ?? '');
      await assertLoginsFree(user, data);
      const updated = await uniqueLogin(() => prisma.user.update({
        where: { id: user.id },
        data: {
          ...(data.givenName !== undefined ? { givenName: data.givenName } : {}),
          ...(data.familyName !== undefined ? { familyName: data.familyName } : {}),
          ...(data.name !== undefined ? { name: data.name } : {}),
          ...(usernameChanged ? { username: data.username ?? null, usernameNormalized: data.username ? normalizeLogin(data.username) : null } : {}),
          ...(emailChanged ? { email: data.email!.trim(), emailNormalized: normalizeLogin(data.email!), emailVerified: false } : {}),
          ...(emailRecased ? { email: data.email!.trim() } : {}),
        },
      }));
      return { user: updated, emailChanged };
    },

    async setPassword(userId: string, password: string) {
      await prisma.user.update({ where: { id: userId }, data: { passwordHash: await hasher.hash(password) } });
    },

    /** Removes the password: the user signs in by emailed link or upstream provider until a reset sets one. */
    async clearPassword(userId: string) {
      await prisma.user.update({ where: { id: userId }, data: { passwordHash: null, passwordUnproven: false } });
    },

    /**
     * Moves the account to an address its owner asked for and then proved by following the link
     * sent there: verified at once. 409 EMAIL_TAKEN if another account has it by now.
     */
    moveToProvenAddress: (userId: string, email: string) =>
      uniqueLogin(() => prisma.user.update({ where: { id: userId }, data: { email, emailNormalized: normalizeLogin(email), emailVerified: true, passwordUnproven: false } })),

    /** Marks the address verified, only if it is still the user's address. */
    async markEmailVerified(userId: string, email: string) {
      const { count } = await prisma.user.updateMany({ where: { id: userId, emailNormalized: normalizeLogin(email) }, data: { emailVerified: true, passwordUnproven: false } });
      return count === 1;
    },

    grantDeveloper: (userId: string) => prisma.user.update({ where: { id: userId }, data: { isDeveloper: true } }),
  };
}

export type UsersService = ReturnType<typeof createUsersService>;
