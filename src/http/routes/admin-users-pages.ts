import type Router from '@koa/router';
import type { Context, Middleware } from 'koa';
import { z } from 'zod';
import { actorId } from '../../auth/principal.js';
import type { User } from '../../users/users.service.js';
import { staffMayManage } from '../../users/users-admin.service.js';
import { AppError } from '../problem.js';
import { requestMeta } from '../request-meta.js';
import { adminOf, assertConfirmed, noticeOf, pageNumber, pager, withMessages, withNotice, type AdminDeps, type Kit } from './admin-page-kit.js';
import { field, type FormProblem } from './page-forms.js';

const PAGE_SIZE = 20;
const PROFILE = ['email', 'username', 'givenName', 'familyName', 'name'] as const;
const FLAGS = { isAdmin: 'Admin', isStaff: 'Staff', isDeveloper: 'Developer (may register apps)', emailVerified: 'Email address confirmed' } as const;
type Flag = keyof typeof FLAGS;

const MESSAGES = {
  email: 'Enter a valid email address.',
  username: 'Enter a username of 2 to 64 letters, digits, dots, dashes or underscores.',
  givenName: 'Use at most 100 characters for the given name.',
  familyName: 'Use at most 100 characters for the family name.',
  name: 'Use at most 200 characters for the full name.',
  password: 'Enter a password.',
};

const LIST_NOTICES = { user_deleted: 'The user is deleted, and everything they held is revoked.' };
const userNotices = (user: User): Record<string, string> => ({
  created: `${user.email} is created.`,
  saved: 'The changes are saved.',
  unchanged: 'Nothing changed.',
  disabled: `${user.email} is disabled and signed out everywhere.`,
  enabled: `${user.email} is enabled again.`,
  reset_sent: `We emailed a password-reset link to ${user.email}.`,
});

type Values = Record<string, string | boolean>;

/** The status form's hidden `active`: what the button does. */
const Active = z.enum(['true', 'false']);

const profileValues = (ctx: Context) => Object.fromEntries(PROFILE.map((k) => [k, field(ctx, k).trim()])) as Record<(typeof PROFILE)[number], string>;
const flagValues = (ctx: Context) => Object.fromEntries(Object.keys(FLAGS).map((k) => [k, field(ctx, k) !== ''])) as Record<Flag, boolean>;

/** The users pages: open to staff (ordinary users only, no roles) and admins. Returns the user page's renderer. */
export function adminUserPages(router: Router, deps: AdminDeps, kit: Kit, adminOnly: Middleware) {
  const { usersAdmin, sessions, apps, accounts, audit } = deps;

  async function renderList(ctx: Context, extra: { problem?: FormProblem; values?: Values } = {}) {
    const { principal } = adminOf(ctx);
    const search = typeof ctx.query.search === 'string' ? ctx.query.search.trim().slice(0, 200) : '';
    const result = await usersAdmin.list(principal, { search: search || undefined, page: pageNumber(ctx.query.page), pageSize: PAGE_SIZE });
    await kit.page(ctx, 'users', 'users', {
      title: 'Users',
      search,
      users: result.items,
      pager: pager('/admin/users', { search: search || undefined }, result.page, result.pageSize, result.total),
      flags: FLAGS,
      values: extra.values ?? { email: '', username: '', givenName: '', familyName: '', name: '', emailVerified: true },
      notice: noticeOf(ctx, LIST_NOTICES),
      error: extra.problem?.message,
      fields: extra.problem?.fields,
    }, extra.problem?.status);
  }

  async function renderUser(ctx: Context, id: string, extra: { problem?: FormProblem; values?: Values } = {}) {
    const admin = adminOf(ctx);
    const user = await usersAdmin.view(admin.principal, id);
    // Staff may edit ordinary users only (the service's rule); the page offers no more than that.
    const mayEdit = admin.isAdmin || staffMayManage(user);
    const [userSessions, grants, appList] = admin.isAdmin
      ? await Promise.all([sessions.listSessions({ userId: id }, { pageSize: 100 }).then((p) => p.items), sessions.listGrants({ userId: id }, { pageSize: 100 }).then((p) => p.items), apps.list(admin.principal)])
      : [[], [], []];
    await kit.page(ctx, 'user', 'users', {
      title: user.email,
      user,
      mayEdit,
      flags: FLAGS,
      values: extra.values ?? { ...Object.fromEntries(PROFILE.map((k) => [k, user[k] ?? ''])), ...Object.fromEntries(Object.keys(FLAGS).map((k) => [k, user[k as Flag]])) },
      sessions: userSessions,
      grants,
      appNames: Object.fromEntries(appList.map((a) => [a.clientId, a.name])),
      notice: noticeOf(ctx, userNotices(user)),
      error: extra.problem?.message,
      fields: extra.problem?.fields,
    }, extra.problem?.status);
  }

  router.get('/users', (ctx) => renderList(ctx));

  router.post('/users', async (ctx) => {
    const admin = adminOf(ctx);
    const profile = profileValues(ctx);
    // Roles are sent only from the admins' form (it carries `flags`); the service refuses them from staff.
    const flags = field(ctx, 'flags') ? flagValues(ctx) : {};
    await kit.act(
      ctx,
      async () => {
        const input = {
          email: profile.email,
          username: profile.username,
          password: field(ctx, 'password'),
          ...Object.fromEntries((['givenName', 'familyName', 'name'] as const).filter((k) => profile[k]).map((k) => [k, profile[k]])),
          ...flags,
        };
        const user = await withMessages(() => usersAdmin.create(admin.principal, input, requestMeta(ctx)), MESSAGES, input);
        return `/admin/users/${encodeURIComponent(user.id)}?notice=created`;
      },
      (problem) => renderList(ctx, { problem, values: { ...profile, ...flags } }),
    );
  });

  router.get('/users/:id', (ctx) => renderUser(ctx, ctx.params.id!));

  router.post('/users/:id', async (ctx) => {
    const admin = adminOf(ctx);
    const id = ctx.params.id!;
    const profile = profileValues(ctx);
    const flags: Partial<Record<Flag, boolean>> = field(ctx, 'flags') ? flagValues(ctx) : {};
    await kit.act(
      ctx,
      async () => {
        const user = await usersAdmin.view(admin.principal, id);
        // Only what changed: an unchanged checkbox must not, say, confirm a new email address.
        const changes: Record<string, string | boolean | null> = {};
        for (const k of PROFILE) if ((profile[k] || null) !== (user[k] || null)) changes[k] = k === 'email' ? profile[k] : profile[k] || null;
        for (const [k, v] of Object.entries(flags)) if (v !== user[k as Flag]) changes[k] = v!;
        if (Object.keys(changes).length === 0) return withNotice(`/admin/users/${encodeURIComponent(id)}`, 'unchanged');
        await withMessages(() => usersAdmin.update(admin.principal, id, changes, false, requestMeta(ctx)), MESSAGES, changes);
        return withNotice(`/admin/users/${encodeURIComponent(id)}`, 'saved');
      },
      (problem) => renderUser(ctx, id, { problem, values: { ...profile, ...flags } as Values }),
    );
  });

  router.post('/users/:id/active', adminOnly, async (ctx) => {
    const admin = adminOf(ctx);
    const id = ctx.params.id!;
    await kit.act(
      ctx,
      async () => {
        const parsed = Active.safeParse(field(ctx, 'active'));
        if (!parsed.success) throw new AppError('VALIDATION_FAILED', 'Choose to enable or disable the user.');
        const active = parsed.data === 'true';
        if (!active) assertConfirmed(ctx, 'confirmDisable', 'this user is to be disabled and signed out everywhere');
        await usersAdmin.update(admin.principal, id, { active }, false, requestMeta(ctx));
        return withNotice(`/admin/users/${encodeURIComponent(id)}`, active ? 'enabled' : 'disabled');
      },
      (problem) => renderUser(ctx, id, { problem }),
    );
  });

  router.post('/users/:id/reset-link', async (ctx) => {
    const admin = adminOf(ctx);
    const id = ctx.params.id!;
    await kit.act(
      ctx,
      async () => {
        const user = await usersAdmin.view(admin.principal, id);
        if (!admin.isAdmin && !staffMayManage(user)) throw new AppError('FORBIDDEN', 'Staff may send reset links to ordinary users only.');
        // The flow sends nothing to a disabled account (and says nothing): say it here instead.
        if (!user.active) throw new AppError('VALIDATION_FAILED', 'This user is disabled; enable the account before sending a reset link.');
        // Throttled by the admin's address, as any request; but the user's own reset event keeps no
        // request details: they are the admin's, kept in the admin's event, which the user's
        // activity shows without them.
        const meta = requestMeta(ctx);
        await accounts.requestPasswordReset(user.email, meta, undefined, { recordAs: {} });
        await audit.record('admin.reset_link_sent', { userId: user.id, actorId: actorId(admin.principal), ...meta });
        return withNotice(`/admin/users/${encodeURIComponent(id)}`, 'reset_sent');
      },
      (problem) => renderUser(ctx, id, { problem }),
    );
  });

  router.post('/users/:id/delete', adminOnly, async (ctx) => {
    const admin = adminOf(ctx);
    const id = ctx.params.id!;
    await kit.act(
      ctx,
      async () => {
        assertConfirmed(ctx, 'confirmDelete', 'this user is to be deleted');
        await usersAdmin.delete(admin.principal, id, requestMeta(ctx));
        return withNotice('/admin/users', 'user_deleted');
      },
      (problem) => renderUser(ctx, id, { problem }),
    );
  });

  return { renderUser };
}
