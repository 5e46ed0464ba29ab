import type { Context, Middleware } from 'koa';
import { ZodError } from 'zod';
import { AppError } from '../problem.js';
import type { Views } from '../views.js';

// Shared by the server-rendered pages outside /interaction (public-pages.ts, account-pages.ts).

export { formBody } from '../form-body.js';

/** A percent-encoded piece of a URL or cookie, decoded; undefined when it is not valid encoding. */
export const safeDecode = (s: string) => {
  try {
    return decodeURIComponent(s);
  } catch {
    return undefined;
  }
};

/** Pages with personal data or one-time links are never stored by browsers or proxies. */
export const noStore: Middleware = async (ctx, next) => {
  ctx.set('cache-control', 'no-store');
  await next();
};

/** Pages reached from an emailed link carry its token in the URL: never send it on as a Referer. */
export const tokenPage: Middleware = async (ctx, next) => {
  ctx.set('cache-control', 'no-store');
  ctx.set('referrer-policy', 'no-referrer');
  await next();
};

/** One string field of a parsed form ('' when absent or repeated). */
export function field(ctx: Context, name: string): string {
  const value = (ctx.request.body as Record<string, unknown> | undefined)?.[name];
  return typeof value === 'string' ? value : '';
}

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/**
 * Helpers for views with fields (`fields`: name -> message, '' for "invalid, no own message"):
 * `fieldAttrs(name, hintId?)` gives aria-invalid/aria-describedby, `fieldError(name)` its message.
 * Both return escaped HTML, for `<%-`.
 */
function fieldHelpers(fields: Record<string, string>) {
  return {
    fieldAttrs(name: string, hintId?: string) {
      const ids = [hintId, fields[name] ? `${name}-error` : undefined].filter(Boolean).join(' ');
      return `${fields[name] === undefined ? '' : ' aria-invalid="true"'}${ids ? ` aria-describedby="${escapeHtml(ids)}"` : ''}`;
    },
    fieldError: (name: string) => (fields[name] ? `<p class="field-error" id="${escapeHtml(name)}-error">${escapeHtml(fields[name])}</p>` : ''),
  };
}

export async function renderPage(ctx: Context, views: Views, view: string, locals: Record<string, unknown>, status = 200) {
  ctx.status = status;
  ctx.type = 'html';
  const fields = (locals.fields ?? {}) as Record<string, string>;
  ctx.body = await views.render(view, { csrfToken: ctx.state.csrfToken, fields, ...fieldHelpers(fields), ...locals });
}

export type FormProblem = { status: number; message: string; fields: Record<string, string> };

// Zod's own wording is for developers; these are for the person filling the form.
const FIELD_MESSAGES: Record<string, string> = {
  email: 'Enter a valid email address.',
  username: 'Use 2 to 64 letters, digits, dots, dashes or underscores.',
  givenName: 'Use at most 100 characters.',
  familyName: 'Use at most 100 characters.',
  name: 'Use at most 200 characters.',
};

/**
 * A mistake the person can fix (bad field, weak password, taken address, wrong password, too many
 * requests) as a message for the form; undefined for anything else, which the error handler takes.
 */
export function formProblem(err: unknown): FormProblem | undefined {
  if (err instanceof ZodError) {
    const fields: Record<string, string> = {};
    for (const issue of err.issues) {
      const path = String(issue.path[0] ?? 'form');
      fields[path] ??= FIELD_MESSAGES[path] ?? issue.message;
    }
    return { status: 400, message: 'Please correct the fields marked below.', fields };
  }
  if (!(err instanceof AppError) || err.status >= 500 || err.code === 'CSRF_FAILED') return undefined;
  const message = err.detail ?? err.title;
  // A field keeps its key (to be marked invalid) but no text of its own when the message says it all.
  const errors = err.errors ?? [];
  const fields: Record<string, string> = {};
  for (const e of errors) fields[e.path] ??= e.message === message || (err.detail && errors.length === 1) ? '' : sentence(e.message);
  if (err.code === 'EMAIL_TAKEN') fields.email = '';
  if (err.code === 'USERNAME_TAKEN') fields.username = '';
  return { status: err.status, message, fields };
}

const sentence = (s: string) => `${s.charAt(0).toUpperCase()}${s.slice(1)}${/[.!?]$/.test(s) ? '' : '.'}`;

/** Runs a form action; a FormProblem is handed to `onProblem` (to re-render the form), anything else rethrown. */
export async function handleForm(ctx: Context, action: () => Promise<void>, onProblem: (p: FormProblem) => Promise<void>) {
  try {
    await action();
  } catch (err) {
    const problem = formProblem(err);
    if (!problem) throw err;
    if (err instanceof AppError && err.retryAfter) ctx.set('retry-after', String(err.retryAfter));
    await onProblem(problem);
  }
}
