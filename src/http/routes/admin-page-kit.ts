import type { Context, Middleware } from 'koa';
import type Provider from 'oidc-provider';
import { ZodError, type z } from 'zod';
import type { Deps } from '../../deps.js';
import type { Principal } from '../../auth/principal.js';
import type { User } from '../../users/users.service.js';
import { AppError, type FieldError } from '../problem.js';
import type { Views } from '../views.js';
import { field, handleForm, renderPage, type FormProblem } from './page-forms.js';

// Shared by the admin console's pages (admin-pages.ts and the admin-*-pages.ts it mounts).

export type AdminDeps = Pick<Deps, 'config' | 'prisma' | 'views' | 'users' | 'usersAdmin' | 'apps' | 'sessions' | 'settings' | 'audit' | 'accounts' | 'connections' | 'oneTimeSecrets'> & {
  csrf: Middleware;
  provider: Provider;
};

/** The signed-in staff member or admin, set by the console's guard on every /admin request. */
export type Admin = { user: User; principal: Principal; isAdmin: boolean };
export const adminOf = (ctx: Context) => ctx.state.admin as Admin;

export type Section = 'dashboard' | 'users' | 'apps' | 'connections' | 'sessions' | 'settings' | 'audit';

/** `2025-01-31 14:05 UTC`, or a dash. */
export const when = (d: Date | null | undefined) => (d ? `${d.toISOString().slice(0, 16).replace('T', ' ')} UTC` : '—');

/** All string values of a (possibly repeated) form field: checkbox groups. */
export function fieldList(ctx: Context, name: string): string[] {
  const value = (ctx.request.body as Record<string, unknown> | undefined)?.[name];
  const list = Array.isArray(value) ? value : [value];
  return list.filter((v): v is string => typeof v === 'string');
}

/** Non-empty trimmed lines of a textarea. */
export const lines = (text: string) => text.split(/\r?\n/).map((l) => l.trim()).filter(Boolean);

/** A positive page number from the query string (1 when absent or malformed). */
export function pageNumber(value: unknown) {
  const n = typeof value === 'string' && /^\d{1,6}$/.test(value) ? Number(value) : 1;
  return Math.max(n, 1);
}

/** Previous/next links for a paged list, keeping the other query parameters. */
export function pager(path: string, params: Record<string, string | undefined>, page: number, pageSize: number, total: number) {
  const href = (p: number) => {
    const q = new URLSearchParams(Object.entries({ ...params, page: p > 1 ? String(p) : undefined }).filter((e): e is [string, string] => Boolean(e[1])));
    const s = q.toString();
    return s ? `${path}?${s}` : path;
  };
  const last = Math.max(1, Math.ceil(total / pageSize));
  return {
    page,
    last,
    total,
    from: total ? (page - 1) * pageSize + 1 : 0,
    to: Math.min(page * pageSize, total),
    prev: page > 1 ? href(Math.min(page - 1, last)) : undefined,
    next: page < last ? href(page + 1) : undefined,
  };
}

type Message = string | ((issue: z.core.$ZodIssue, value: unknown) => string);

/**
 * A ZodError from a service as a form mistake with our wording: one message per field (the first
 * issue of each), shown at the top when there is only one, next to each field otherwise.
 */
export function invalidFields(err: ZodError, messages: Record<string, Message>, input: unknown): AppError {
  const errors: FieldError[] = [];
  for (const issue of err.issues) {
    const path = String(issue.path[0] ?? 'form');
    if (errors.some((e) => e.path === path)) continue;
    const value = issue.path.reduce<unknown>((v, key) => (v as Record<PropertyKey, unknown> | undefined)?.[key as PropertyKey], input);
    const message = messages[path];
    errors.push({ path, message: typeof message === 'function' ? message(issue, value) : (message ?? `${path}: ${issue.message}.`) });
  }
  return new AppError('VALIDATION_FAILED', errors.length === 1 ? errors[0]!.message : 'Please correct the fields marked below.', errors);
}

/** Runs `run` and maps a ZodError it throws with `invalidFields`. */
export async function withMessages<T>(run: () => Promise<T>, messages: Record<string, Message>, input: unknown): Promise<T> {
  try {
    return await run();
  } catch (err) {
    throw err instanceof ZodError ? invalidFields(err, messages, input) : err;
  }
}

// Notices after a redirect are named in the query string (?notice=saved), never given as text.
const COMMON_NOTICES: Record<string, string> = {
  session_revoked: 'The session is ended.',
  grant_revoked: 'The grant is revoked, with every token issued under it.',
  already_gone: 'That had already ended; nothing to revoke.',
};

/** The notice named by ?notice=, from this page's own `notices` or the common ones. */
export function noticeOf(ctx: Context, notices: Record<string, string> = {}) {
  const code = typeof ctx.query.notice === 'string' ? ctx.query.notice : '';
  return Object.hasOwn(notices, code) ? notices[code] : Object.hasOwn(COMMON_NOTICES, code) ? COMMON_NOTICES[code] : undefined;
}

/**
 * An action that cannot be taken back (a deletion; a new secret or key, which ends the current
 * one; revoking tokens, a session or a grant; disabling a user, who is signed out everywhere) runs
 * only with its form's box ticked: one stray click or an old form must not break a production
 * client or sign someone out. The box is `confirm`, shown as the field `checkbox`.
 */
export function assertConfirmed(ctx: Context, checkbox: string, what: string) {
  if (field(ctx, 'confirm')) return;
  const message = `Tick the box to confirm that ${what}.`;
  throw new AppError('VALIDATION_FAILED', message, [{ path: checkbox, message }]);
}

/** Adds ?notice=<code> to a console path. */
export const withNotice = (path: string, code: string) => `${path}${path.includes('?') ? '&' : '?'}notice=${code}`;

export function createKit(views: Views) {
  /** Renders views/admin/<view>.ejs in the wide layout with the console's navigation. */
  async function page(ctx: Context, view: string, section: Section, locals: Record<string, unknown>, status = 200) {
    const admin = adminOf(ctx);
    await renderPage(ctx, views, `admin/${view}`, { mainClass: 'wide', me: admin.user, isAdmin: admin.isAdmin, section, notice: undefined, error: undefined, when, ...locals }, status);
  }

  /** The 403 page, for people signed in without the role a page needs. */
  async function forbidden(ctx: Context, message: string) {
    await renderPage(ctx, views, 'message', { title: 'Not allowed', heading: 'You cannot open this page', message, alert: true, link: { href: '/account', label: 'Go to your account' } }, 403);
  }

  /**
   * A console POST: `run` answers with the page to go to (Post/Redirect/Get), or renders a page
   * itself; a mistake the admin can fix is shown by `onProblem` with its 4xx status.
   */
  async function act(ctx: Context, run: () => Promise<string | void>, onProblem: (p: FormProblem) => Promise<void>) {
    await handleForm(
      ctx,
      async () => {
        const to = await run();
        if (ctx.body !== undefined || !to) return;
        ctx.status = 303;
        ctx.redirect(to);
      },
      onProblem,
    );
  }

  return { page, forbidden, act };
}

export type Kit = ReturnType<typeof createKit>;

/** Admins only: everyone else (staff) gets the 403 page. */
export const adminOnly = (kit: Kit): Middleware => async (ctx, next) => {
  if (!adminOf(ctx).isAdmin) return kit.forbidden(ctx, 'Only admins can open this part of the console.');
  await next();
};
