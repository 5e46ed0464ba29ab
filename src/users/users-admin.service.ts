import { sqltag as sql } from '@prisma/client/runtime/client';
import { z } from 'zod';
import { PageQuery, pageOfIds } from '../db/paged-ids.js';
import type { Db } from '../db/prisma.js';
import { ACCESS_LINKS, type OneTimeTokens } from '../tokens/one-time-tokens.js';
import type { Provider } from '../db/url.js';
import type { Audit, RequestMeta } from '../audit/audit.service.js';
import { createdWith, fieldChanges, SECRET_CHANGED } from '../audit/changes.js';
import { actorId, isAdmin, isStaff, type Principal } from '../auth/principal.js';
import { revokeUserSessions } from '../auth/revoke-sessions.js';
import { AppError } from '../http/problem.js';
import { assertPasswordAccepted } from '../passwords/password-policy.js';
import { deleteUserRows, guardLastAdmin } from './last-admin.js';
import { NewUser, ProfileUpdate, normalizeLogin, userAuditView, type User, type UsersService } from './users.service.js';

export const UserQuery = PageQuery.extend({ search: z.string().trim().max(200).optional() });

const Flags = z.object({
  isAdmin: z.boolean(),
  isStaff: z.boolean(),
  isDeveloper: z.boolean(),
  active: z.boolean(),
  emailVerified: z.boolean(),
});
export const AdminNewUser = NewUser.pick({ email: true, givenName: true, familyName: true, name: true })
  .extend({ username: NewUser.shape.username.unwrap(), password: z.string().min(1).max(1024) })
  .extend(Flags.partial().shape)
  .strict();
export const AdminUserPatch = ProfileUpdate.extend({ password: z.string().min(1).max(1024).optional() }).extend(Flags.partial().shape).strict();
// PUT replaces the profile: omitted optional fields are cleared; roles are kept unless given.
export const AdminUserReplace = AdminUserPatch.required({ email: true }).extend({
  username: ProfileUpdate.shape.username.default(null),
  givenName: ProfileUpdate.shape.givenName.default(null),
  familyName: ProfileUpdate.shape.familyName.default(null),
  name: ProfileUpdate.shape.name.default(null),
});

const FLAG_KEYS = Object.keys(Flags.shape) as (keyof z.infer<typeof Flags>)[];

/** Whom staff may edit and send reset links to: users with no role (admin, staff or developer). */
export const staffMayManage = (target: Pick<User, 'isAdmin' | 'isStaff' | 'isDeveloper'>) => !(target.isAdmin || target.isStaff || target.isDeveloper);

/** User administration for admins and staff: plain functions, permissions checked here. */
export function createUsersAdmin(deps: { prisma: Db; provider: Provider; users: UsersService; audit: Audit; tokens: OneTimeTokens }) {
  const { prisma, users, audit } = deps;

  async function load(id: string) {
    const user = await users.findById(id);
    if (!user) throw new AppError('USER_NOT_FOUND');
    return user;
  }

  function assertMayEdit(actor: Principal, target: User, changes: Record<string, unknown>) {
    if (!isStaff(actor)) throw new AppError('FORBIDDEN');
    if (isAdmin(actor)) return;
    if (!staffMayManage(target)) throw new AppError('FORBIDDEN', 'Staff may edit ordinary users only.');
    if (FLAG_KEYS.some((k) => changes[k] !== undefined)) throw new AppError('FORBIDDEN', 'Only admins may change roles and the active flag.');
  }

  /** One user for the console, whose page shows staff any other user read-only, without its edit controls. */
  async function view(actor: Principal, id: string) {
    if (!isStaff(actor)) throw new AppError('FORBIDDEN');
    return load(id);
  }

  const guarded = <T>(target: User, losesAdmin: boolean, change: (tx: Db) => Promise<T>) => guardLastAdmin(prisma, deps.provider, target, losesAdmin, change);

  return {
    async list(actor: Principal, query: z.input<typeof UserQuery>) {
      if (!isStaff(actor)) throw new AppError('FORBIDDEN');
      const { search, page, pageSize } = UserQuery.parse(query);
      const orderBy = [{ createdAt: 'asc' as const }, { id: 'asc' as const }];
      if (!search) {
        const [total, items] = await Promise.all([prisma.user.count(), prisma.user.findMany({ orderBy, skip: (page - 1) * pageSize, take: pageSize })]);
        return { items, total, page, pageSize };
      }
      // Prisma's `contains` does not escape % and _ (prisma/orm#19506): match with an explicit ESCAPE.
      const pattern = `%${search.toLowerCase().replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
      const from = sql`
        FROM users
        WHERE email_normalized LIKE ${pattern} ESCAPE '\\' OR username_normalized LIKE ${pattern} ESCAPE '\\'
           OR lower(name) LIKE ${pattern} ESCAPE '\\' OR lower(given_name) LIKE ${pattern} ESCAPE '\\' OR lower(family_name) LIKE ${pattern} ESCAPE '\\'`;
      const { ids, total } = await pageOfIds(prisma, { id: sql`id`, from, order: sql`created_at, id`, page, pageSize });
      const items = ids.length ? await prisma.user.findMany({ where: { id: { in: ids } }, orderBy }) : [];
      return { items, total, page, pageSize };
    },

    /** One user: staff read only the users they may edit, and get an edit's 403 for the others. */
    async get(actor: Principal, id: string) {
      const user = await view(actor, id);
      if (!isAdmin(actor) && !staffMayManage(user)) throw new AppError('FORBIDDEN', 'Staff may read and edit ordinary users only.');
      return user;
    },

    view,

    async create(actor: Principal, input: z.input<typeof AdminNewUser>, meta: RequestMeta) {
      const data = AdminNewUser.parse(input);
      if (!isStaff(actor)) throw new AppError('FORBIDDEN');
      if (!isAdmin(actor) && FLAG_KEYS.some((k) => data[k] !== undefined)) throw new AppError('FORBIDDEN', 'Only admins may set roles and the active flag.');
      await assertPasswordAccepted(data.password, [data.email, data.username, data.name]);
      const user = await users.create({ ...data, isAdmin: data.isAdmin, isStaff: data.isStaff, emailVerified: data.emailVerified });
      const extra = { isDeveloper: data.isDeveloper, active: data.active };
      const created = Object.values(extra).some((v) => v !== undefined) ? await prisma.user.update({ where: { id: user.id }, data: extra }) : user;
      await audit.record('admin.user_created', { userId: user.id, actorId: actorId(actor), detail: { changes: createdWith(userAuditView(created)) }, ...meta });
      return created;
    },

    async update(actor: Principal, id: string, input: unknown, replace: boolean, meta: RequestMeta) {
      if (!isStaff(actor)) throw new AppError('FORBIDDEN');
      const changes = (replace ? AdminUserReplace : AdminUserPatch).parse(input);
      const target = await load(id);
      assertMayEdit(actor, target, changes);
      if (changes.password) {
        const who = { ...target, ...changes };
        await assertPasswordAccepted(changes.password, [who.email, who.username, who.name]);
      }

      const { password, isAdmin: admin, isStaff: staff, isDeveloper, active, emailVerified, ...profile } = changes;
      // A taken email or username refuses the whole request before anything is written.
      await users.assertLoginsFree(target, profile);
      const flags = Object.fromEntries(Object.entries({ isAdmin: admin, isStaff: staff, isDeveloper, active }).filter(([, v]) => v !== undefined));
      // Role and active changes first, under the last-admin guard; then the profile.
      if (Object.keys(flags).length) {
        await guarded(target, admin === false || active === false, (tx) => tx.user.update({ where: { id }, data: flags }));
      }
      let user = (await users.updateProfile({ ...target, ...flags } as User, profile)).user;
      // After the profile: a new email is unconfirmed unless this request says it is confirmed.
      if (emailVerified !== undefined && user.emailVerified !== emailVerified) user = await prisma.user.update({ where: { id }, data: { emailVerified } });
      if (password) await users.setPassword(id, password);
      // A disabled user, or one whose password an admin replaced, is signed out everywhere at once;
      // a replaced password also ends the emailed links that could set or skip it.
      if (active === false || password) await revokeUserSessions(prisma, id);
      if (password) await deps.tokens.revokeAll(id, ACCESS_LINKS);
      // The admin's address stands: a move its owner asked for earlier cannot undo it.
      else if (user.email !== target.email) await deps.tokens.revokeAll(id, ['email-change']);
      const fields = Object.keys(changes).filter((k) => k !== 'password').concat(password ? ['password'] : []);
      const changed = { ...fieldChanges(userAuditView(target), userAuditView(user)), ...(password ? { password: SECRET_CHANGED } : {}) };
      await audit.record('admin.user_updated', { userId: id, actorId: actorId(actor), detail: { fields, changes: changed }, ...meta });
      return user;
    },

    async delete(actor: Principal, id: string, meta: RequestMeta) {
      if (!isAdmin(actor)) throw new AppError('FORBIDDEN', 'Only admins may delete users.');
      const target = await load(id);
      await guarded(target, true, (tx) => deleteUserRows(tx, id));
      await revokeUserSessions(prisma, id);
      await deps.tokens.revokeAll(id);
      await audit.record('admin.user_deleted', { userId: id, actorId: actorId(actor), detail: { email: normalizeLogin(target.email) }, ...meta });
    },
  };
}

export type UsersAdmin = ReturnType<typeof createUsersAdmin>;
