import Router from '@koa/router';
import type { Context, Middleware } from 'koa';
import { z } from 'zod';
import type { AccountFlows } from '../../accounts/account-flows.js';
import type { Config } from '../../config/env.js';
import type { SettingsService } from '../../settings/settings.service.js';
import type { PreauthenticatedLogin } from '../../oidc/preauthenticated-login.js';
import type { OneTimeTokens } from '../../tokens/one-time-tokens.js';
import type { FederatedLogin } from '../../federation/federated-login.js';
import type { UnitOfWork } from '../../db/unit-of-work.js';
import { AppError } from '../problem.js';
import { answered, requestMeta } from '../request-meta.js';
import type { Views } from '../views.js';
import { field, formBody, formProblem, handleForm, noStore, renderPage, tokenPage, type FormProblem } from './page-forms.js';

type Deps = {
  config: Config;
  settings: SettingsService;
  views: Views;
  accounts: AccountFlows;
  tokens: OneTimeTokens;
  csrf: Middleware;
  preauth: PreauthenticatedLogin;
  federatedLogin: FederatedLogin;
  unitOfWork: Pick<UnitOfWork, 'middleware' | 'onFailure'>;
};

const Email = z.object({ email: z.email().max(254) });
const Token = z.string().min(10).max(200);

/** Where to go from a dead emailed link, by what the link was for. */
const INVALID_LINK_NEXT = {
  reset: { text: 'Ask for a new link: they work once and expire after a short while.', link: { href: '/forgot-password', label: 'Send me a new link' } },
  verify: { text: 'Sign in to your account to send yourself a new confirmation link.', link: { href: '/account', label: 'Go to your account' } },
  magic: { text: 'Go back to the application and ask for a new sign-in link.', link: { href: '/account', label: 'Sign in to your account' } },
};

/**
 * Pages anyone can open: registration, forgotten password, and the pages emailed links lead to.
 * A GET never uses a token (mail scanners prefetch links): it shows a button that POSTs it.
 */
export function publicPageRoutes({ config, settings, views, accounts, tokens, csrf, preauth, federatedLogin, unitOfWork }: Deps) {
  const router = new Router();
  const form = formBody();

  const invalidLink = (ctx: Context, kind: keyof typeof INVALID_LINK_NEXT) =>
    renderPage(ctx, views, 'message', {
      title: 'Link not valid',
      heading: new AppError('INVALID_TOKEN').title,
      message: INVALID_LINK_NEXT[kind].text,
      link: INVALID_LINK_NEXT[kind].link,
      alert: true,
    }, 400);

  /** Runs a token action; a bad, used or expired token shows the "link not valid" page. */
  async function withToken(ctx: Context, kind: keyof typeof INVALID_LINK_NEXT, source: unknown, action: (token: string) => Promise<void>) {
    const token = Token.safeParse(source);
    if (!token.success) return invalidLink(ctx, kind);
    try {
      await action(token.data);
    } catch (err) {
      if (err instanceof AppError && err.code === 'INVALID_TOKEN') return invalidLink(ctx, kind);
      throw err;
    }
  }

  /**
   * The sign-in these pages were opened from (its uid: ?signin= on the way in, a hidden field in
   * their forms), so that they lead back to it and its app, not to the account page.
   */
  const signinOf = (ctx: Context) => {
    const uid = ctx.method === 'POST' ? field(ctx, 'signin') : ctx.query.signin;
    return typeof uid === 'string' && /^[\w-]{1,64}$/.test(uid) ? uid : undefined;
  };
  const backTo = (signin: string | undefined) => (signin ? `/interaction/${signin}` : '/account');

  // Registration.
  const renderRegister = (ctx: Context, values: Record<string, string> = {}, problem?: FormProblem) =>
    renderPage(ctx, views, 'register', {
      title: 'Create an account',
      values: { email: '', username: '', name: '', ...values },
      signin: signinOf(ctx),
      back: backTo(signinOf(ctx)),
      error: problem?.message,
      fields: problem?.fields ?? {},
    }, problem?.status);

  const registrationClosed: Middleware = async (ctx, next) => {
    if (settings.snapshot().registrationOpen) return next();
    const closed = new AppError('REGISTRATION_CLOSED');
    return renderPage(ctx, views, 'message', {
      title: closed.title,
      heading: closed.title,
      message: 'New accounts cannot be created here. Ask the administrator of this service for an account.',
      alert: true,
    }, closed.status);
  };

  router.get('/register', noStore, registrationClosed, csrf, (ctx) => renderRegister(ctx));

  router.post('/register', noStore, registrationClosed, form, csrf, async (ctx) => {
    const values = { email: field(ctx, 'email').trim(), username: field(ctx, 'username').trim(), name: field(ctx, 'name').trim() };
    await handleForm(
      ctx,
      async () => {
        const input = { email: values.email, password: field(ctx, 'password'), username: values.username || undefined, name: values.name || undefined };
        const user = await accounts.register(input, requestMeta(ctx));
        await renderPage(ctx, views, 'message', {
          title: 'Check your inbox',
          heading: 'Check your inbox',
          message: `We sent a link to ${user.email}. Open it to confirm your email address.`,
          link: signinOf(ctx) ? { href: backTo(signinOf(ctx)), label: 'Continue signing in' } : { href: '/account', label: 'Go to your account' },
        }, 201);
      },
      (problem) => renderRegister(ctx, values, problem),
    );
  });

  // Forgotten password: the same answer whether or not the address has an account.
  const renderForgot = (ctx: Context, email = '', error?: string, status?: number) =>
    renderPage(ctx, views, 'forgot-password', { title: 'Forgot your password?', email, error, signin: signinOf(ctx), back: backTo(signinOf(ctx)) }, status);

  router.get('/forgot-password', noStore, csrf, (ctx) => renderForgot(ctx));

  router.post('/forgot-password', noStore, form, csrf, async (ctx) => {
    const email = field(ctx, 'email').trim();
    const input = Email.safeParse({ email });
    if (!input.success) return renderForgot(ctx, email, 'Enter a valid email address.', 400);
    await handleForm(
      ctx,
      async () => {
        await accounts.requestPasswordReset(input.data.email, requestMeta(ctx), answered(ctx));
        await renderPage(ctx, views, 'message', {
          title: 'Check your inbox',
          heading: 'Check your inbox',
          message: `If an account exists for this address, we sent it a link to choose a new password. The link expires in ${Math.round(config.accounts.ttl.resetPassword / 60)} minutes.`,
          link: { href: backTo(signinOf(ctx)), label: 'Back to sign in' },
        });
      },
      (problem) => renderForgot(ctx, email, problem.message, problem.status),
    );
  });

  // Reset password from the emailed link.
  const renderReset = (ctx: Context, token: string, email: string, problem?: FormProblem) =>
    renderPage(ctx, views, 'reset-password', {
      title: 'Choose a new password',
      token,
      email,
      error: problem?.message,
      fields: problem?.fields ?? {},
    }, problem?.status);

  router.get('/reset-password', tokenPage, csrf, (ctx) =>
    withToken(ctx, 'reset', ctx.query.token, async (token) => {
      const record = await accounts.peekResetToken(token);
      await renderReset(ctx, token, record.email);
    }),
  );

  router.post('/reset-password', tokenPage, form, csrf, (ctx) =>
    withToken(ctx, 'reset', field(ctx, 'token'), async (token) => {
      try {
        await accounts.resetPassword(token, field(ctx, 'password'), requestMeta(ctx));
      } catch (err) {
        const problem = formProblem(err);
        if (!problem || (err instanceof AppError && err.code === 'INVALID_TOKEN')) throw err;
        const record = await accounts.peekResetToken(token);
        return renderReset(ctx, token, record.email, problem);
      }
      await renderPage(ctx, views, 'message', {
        title: 'Password changed',
        heading: 'Password changed — sign in again',
        message: 'Your new password is set. For your security you were signed out everywhere: sign in again with the new password.',
        link: { href: '/account', label: 'Sign in' },
      });
    }),
  );

  // Confirm an email address.
  router.get('/verify-email', tokenPage, csrf, (ctx) =>
    withToken(ctx, 'verify', ctx.query.token, async (token) => {
      const record = await tokens.peek(['verify-email', 'email-change'], token);
      if (!record) throw new AppError('INVALID_TOKEN');
      await renderPage(ctx, views, 'confirm-link', {
        title: 'Confirm your email address',
        heading: 'Confirm your email address',
        message: record.purpose === 'email-change' ? `Confirm that ${record.email} is your address, and move your account to it.` : `Confirm that ${record.email} is your address.`,
        action: '/verify-email',
        token,
        button: 'Confirm email address',
      });
    }),
  );

  router.post('/verify-email', tokenPage, form, csrf, (ctx) =>
    withToken(ctx, 'verify', field(ctx, 'token'), async (token) => {
      const { movedTo } = await accounts.verifyEmail(token, requestMeta(ctx));
      await renderPage(ctx, views, 'message', {
        title: 'Email address confirmed',
        heading: 'Email address confirmed',
        message: movedTo ? `Thank you: your account's email address is now ${movedTo}.` : 'Thank you: your email address is confirmed.',
        link: { href: '/account', label: 'Go to your account' },
      });
    }),
  );

  // Sign in with an emailed link.
  router.get('/magic-link', tokenPage, csrf, (ctx) =>
    withToken(ctx, 'magic', ctx.query.token, async (token) => {
      const record = await accounts.peekMagicLink(token);
      await renderPage(ctx, views, 'confirm-link', {
        title: 'Sign in',
        heading: `Sign in to ${config.product.name}`,
        message: `Continue as ${record.email}.`,
        action: '/magic-link',
        token,
        button: 'Sign in',
      });
    }),
  );

  // In a unit of work: should what follows the link's use fail, the link is given back for a retry.
  router.post('/magic-link', tokenPage, form, csrf, unitOfWork.middleware, (ctx) =>
    withToken(ctx, 'magic', field(ctx, 'token'), async (token) => {
      const { user, interactionUid } = await accounts.useMagicLink(token, requestMeta(ctx), unitOfWork.onFailure);
      // Asked for to prove the account while linking an upstream one: the link is made now.
      await federatedLogin.completeLink(ctx, user.id);
      const to = await preauth.complete(ctx, user.id, interactionUid, 'email');
      ctx.status = 303;
      ctx.redirect(to);
    }),
  );

  return router.routes();
}
