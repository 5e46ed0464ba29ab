import type Router from '@koa/router';
import type { Context, Middleware } from 'koa';
import type { z } from 'zod';
import { AUDIT_EVENTS } from '../../audit/audit.service.js';
import { fieldChanges } from '../../audit/changes.js';
import { actorId } from '../../auth/principal.js';
import { Settings } from '../../settings/settings.service.js';
import { requestMeta } from '../request-meta.js';
import { auditDetail } from './admin-audit-detail.js';
import { adminOf, assertConfirmed, noticeOf, pageNumber, pager, withMessages, withNotice, type AdminDeps, type Kit } from './admin-page-kit.js';
import { field, safeDecode, type FormProblem } from './page-forms.js';

type SettingKey = keyof Settings;
type SettingField = { label: string; kind: 'seconds' | 'count' | 'flag'; hint?: string };

// Every runtime setting, in the order of the form; the compiler insists none is left out.
const SETTING_FIELDS: Record<SettingKey, SettingField> = {
  accessTokenTtl: { label: 'Access token lifetime', kind: 'seconds' },
  idTokenTtl: { label: 'ID token lifetime', kind: 'seconds' },
  refreshTokenTtl: { label: 'Refresh token lifetime', kind: 'seconds' },
  registrationOpen: { label: 'Anyone may create an account at /register', kind: 'flag' },
  allowUnverifiedLogin: { label: 'Users may sign in before confirming their email address', kind: 'flag' },
  loginMaxFailuresPerAccount: { label: 'Failed sign-ins allowed per account', kind: 'count', hint: 'Within the throttling window; then the account must wait.' },
  loginMaxFailuresPerIp: { label: 'Failed sign-ins allowed per IP address', kind: 'count', hint: 'Within the throttling window; then the address must wait.' },
  loginThrottleWindow: { label: 'Throttling window', kind: 'seconds' },
};
const SETTING_KEYS = Object.keys(SETTING_FIELDS) as SettingKey[];

/** A number field's bounds, read from the Settings schema. */
function bounds(key: SettingKey) {
  const schema = Settings.shape[key] as unknown as z.ZodNumber;
  return { min: schema.minValue ?? 0, max: schema.maxValue ?? Number.MAX_SAFE_INTEGER };
}
const SETTING_MESSAGES = Object.fromEntries(
  SETTING_KEYS.filter((k) => SETTING_FIELDS[k].kind !== 'flag').map((k) => {
    const { min, max } = bounds(k);
    return [k, `${SETTING_FIELDS[k].label}: enter a whole number from ${min} to ${max}${SETTING_FIELDS[k].kind === 'seconds' ? ' seconds' : ''}.`];
  }),
);

const EVENT_LABELS = new Set<string>(AUDIT_EVENTS);
const AUDIT_PAGE_SIZE = 50;
// The most a list on the sessions page shows (the API pages through them all).
const LIST_SIZE = 100;
const DAY = /^\d{4}-\d{2}-\d{2}$/;

/** A same-console page to come back to after a revoke, or `fallback`. */
function backTo(ctx: Context, fallback: string) {
  const back = field(ctx, 'back');
  return /^\/admin(\/[\w%.~-]*)*$/.test(back) ? back : fallback;
}

/** The user whose page `back` is, if it is one. */
function userPageOf(back: string) {
  const id = /^\/admin\/users\/([^/]+)$/.exec(back)?.[1];
  return id === undefined ? undefined : safeDecode(id);
}

type RenderUser = (ctx: Context, id: string, extra: { problem?: FormProblem }) => Promise<void>;

const REVOKE = {
  session: { box: 'confirmSession', what: 'this session is to be ended', done: 'session_revoked' },
  grant: { box: 'confirmGrant', what: 'this grant is to be revoked, with every token issued under it', done: 'grant_revoked' },
} as const;

/** Sessions and grants, runtime settings and the audit log: admins only. */
export function adminOpsPages(router: Router, deps: AdminDeps, kit: Kit, adminOnly: Middleware, renderUser: RenderUser) {
  const { sessions, settings, audit, apps, users, prisma } = deps;

  async function emails(ids: (string | null)[]) {
    const wanted = [...new Set(ids.filter((id): id is string => Boolean(id) && !id!.startsWith('client:')))];
    const rows = wanted.length ? await prisma.user.findMany({ where: { id: { in: wanted } }, select: { id: true, email: true } }) : [];
    return Object.fromEntries(rows.map((r) => [r.id, r.email]));
  }

  async function renderSessions(ctx: Context, problem?: FormProblem) {
    const paging = { pageSize: LIST_SIZE };
    const [sessionPage, grantPage, appList] = await Promise.all([sessions.listSessions(undefined, paging), sessions.listGrants({}, paging), apps.list(adminOf(ctx).principal)]);
    const [list, grants] = [sessionPage.items, grantPage.items];
    await kit.page(ctx, 'sessions', 'sessions', {
      title: 'Sessions',
      sessions: list,
      grants,
      sessionTotal: sessionPage.total,
      grantTotal: grantPage.total,
      userEmails: await emails([...list.map((s) => s.userId), ...grants.map((g) => g.userId)]),
      appNames: Object.fromEntries(appList.map((a) => [a.clientId, a.name])),
      notice: noticeOf(ctx),
      error: problem?.message,
      fields: problem?.fields,
    }, problem?.status);
  }

  router.get('/sessions', adminOnly, (ctx) => renderSessions(ctx));

  /** Revokes one session or grant, from the sessions page or a user's page (its `back`). */
  const revoke = (kind: keyof typeof REVOKE) => async (ctx: Context) => {
    const id = ctx.params.id!;
    const back = backTo(ctx, '/admin/sessions');
    const { box, what, done } = REVOKE[kind];
    await kit.act(
      ctx,
      async () => {
        // Each row has its own box, named after what it revokes.
        assertConfirmed(ctx, `${box}-${id}`, what);
        const by = { actorId: actorId(adminOf(ctx).principal), ...requestMeta(ctx) };
        const revoked = kind === 'session' ? await sessions.revokeSession(id, by) : await sessions.revokeGrant(id, by);
        return withNotice(back, revoked ? done : 'already_gone');
      },
      (problem) => {
        const userId = userPageOf(back);
        return userId === undefined ? renderSessions(ctx, problem) : renderUser(ctx, userId, { problem });
      },
    );
  };

  router.post('/sessions/:id/revoke', adminOnly, revoke('session'));
  router.post('/grants/:id/revoke', adminOnly, revoke('grant'));

  async function renderSettings(ctx: Context, extra: { problem?: FormProblem; values?: Record<string, string | boolean> } = {}) {
    const current = await settings.get();
    await kit.page(ctx, 'settings', 'settings', {
      title: 'Settings',
      settingFields: SETTING_KEYS.map((key) => ({ key, ...SETTING_FIELDS[key], ...(SETTING_FIELDS[key].kind === 'flag' ? {} : bounds(key)) })),
      values: extra.values ?? current,
      defaults: settings.defaults(),
      notice: noticeOf(ctx, { saved: 'The settings are saved; they apply now, in every process within seconds.', unchanged: 'Nothing changed.' }),
      error: extra.problem?.message,
      fields: extra.problem?.fields,
    }, extra.problem?.status);
  }

  router.get('/settings', adminOnly, (ctx) => renderSettings(ctx));

  router.post('/settings', adminOnly, async (ctx) => {
    const submitted = Object.fromEntries(SETTING_KEYS.map((k) => [k, SETTING_FIELDS[k].kind === 'flag' ? field(ctx, k) !== '' : field(ctx, k).trim()]));
    await kit.act(
      ctx,
      async () => {
        const current = await settings.get();
        // Only what changed is stored: untouched settings keep following the environment's defaults.
        const patch: Record<string, number | boolean> = {};
        for (const k of SETTING_KEYS) {
          const raw = submitted[k]!;
          const value = typeof raw === 'boolean' ? raw : /^\d{1,12}$/.test(raw) ? Number(raw) : Number.NaN;
          if (value !== current[k]) patch[k] = value;
        }
        if (Object.keys(patch).length === 0) return '/admin/settings?notice=unchanged';
        const admin = adminOf(ctx);
        const { before, after } = await withMessages(() => settings.change(patch, actorId(admin.principal)), SETTING_MESSAGES, patch);
        await audit.record('admin.settings_updated', { actorId: actorId(admin.principal), detail: { ...patch, changes: fieldChanges(before, after) }, ...requestMeta(ctx) });
        return '/admin/settings?notice=saved';
      },
      (problem) => renderSettings(ctx, { problem, values: submitted }),
    );
  });

  router.get('/audit', adminOnly, async (ctx) => {
    const q = (name: string) => (typeof ctx.query[name] === 'string' ? (ctx.query[name] as string).trim().slice(0, 320) : '');
    const filter = { user: q('user'), event: q('event'), from: q('from'), to: q('to') };
    const problems: Record<string, string> = {};
    if (filter.event && !EVENT_LABELS.has(filter.event)) problems.event = 'Choose an event from the list.';
    const day = (value: string, name: 'from' | 'to') => {
      if (!value) return undefined;
      const date = DAY.test(value) ? new Date(`${value}T${name === 'from' ? '00:00:00.000' : '23:59:59.999'}Z`) : undefined;
      if (!date || Number.isNaN(date.getTime())) problems[name] = 'Enter a date as YYYY-MM-DD.';
      // PostgreSQL has no year 0 (1 BC), so such a filter would fail the query.
      else if (value.startsWith('0000')) problems[name] = 'Use a year from 0001 on.';
      return date;
    };
    const from = day(filter.from, 'from');
    const to = day(filter.to, 'to');
    if (from && to && from > to && !problems.from && !problems.to) problems.to = 'The end date is before the start date.';

    // A user is named by id, email or username; a deleted user's history by its id, as the API does.
    const user = filter.user ? ((await users.findById(filter.user)) ?? (await users.findByLogin(filter.user))) : undefined;
    const userId = user?.id ?? (filter.user || undefined);

    const search = () => audit.search({ userId, event: filter.event || undefined, from, to, page: pageNumber(ctx.query.page), pageSize: AUDIT_PAGE_SIZE });
    let result = Object.keys(problems).length ? { items: [], total: 0, page: 1, pageSize: AUDIT_PAGE_SIZE } : await search();
    if (filter.user && !user && !result.total && !(await audit.search({ userId, page: 1, pageSize: 1 })).total) {
      problems.user = `No user, or deleted user's events, has the id, email or username “${filter.user}”.`;
      result = { items: [], total: 0, page: 1, pageSize: AUDIT_PAGE_SIZE };
    }
    const keys = Object.keys(problems);
    const people = await emails(result.items.flatMap((e) => [e.userId, e.actorId]));
    await kit.page(ctx, 'audit', 'audit', {
      title: 'Audit log',
      filter,
      events: AUDIT_EVENTS,
      items: result.items.map((e) => ({
        ...e,
        user: e.userId ? (people[e.userId] ?? e.userId) : '',
        // A deleted user has no page; their history does.
        userHref: e.userId ? (people[e.userId] ? `/admin/users/${encodeURIComponent(e.userId)}` : `/admin/audit?${new URLSearchParams({ user: e.userId })}`) : '',
        actor: e.actorId ? (people[e.actorId] ?? e.actorId) : '',
        ...auditDetail(e.detail),
      })),
      pager: pager('/admin/audit', { ...filter }, result.page, result.pageSize, result.total),
      error: keys.length === 1 ? problems[keys[0]!] : keys.length ? 'Please correct the filters marked below.' : undefined,
      fields: keys.length === 1 ? { [keys[0]!]: '' } : problems,
    }, keys.some((k) => k !== 'user') ? 400 : 200);
  });
}
