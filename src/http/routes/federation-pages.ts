import Router from '@koa/router';
import type { Context, Middleware } from 'koa';
import type Provider from 'oidc-provider';
import { z } from 'zod';
import type { AccountFlows } from '../../accounts/account-flows.js';
import type { Authenticate } from '../../auth/authenticate.js';
import type { FederatedLogin } from '../../federation/federated-login.js';
import type { PreauthenticatedLogin } from '../../oidc/preauthenticated-login.js';
import { answered, requestMeta } from '../request-meta.js';
import type { Views } from '../views.js';
import { formBody, handleForm, noStore, renderPage } from './page-forms.js';

type Deps = {
  provider: Provider;
  views: Views;
  authenticate: Authenticate;
  accounts: AccountFlows;
  federatedLogin: FederatedLogin;
  preauth: PreauthenticatedLogin;
  csrf: Middleware;
};

const Password = z.object({ password: z.string().min(1).max(1024) });

/** The upstream provider's callback, and the page that links an upstream account to a local one. */
export function federationPageRoutes({ provider, views, authenticate, accounts, federatedLogin, preauth, csrf }: Deps) {
  const router = new Router();
  const form = formBody();

  /** The way back to the pending sign-in, while it is still pending. */
  async function backToSignIn(interactionUid?: string) {
    return interactionUid && (await provider.Interaction.find(interactionUid)) ? { href: `/interaction/${encodeURIComponent(interactionUid)}`, label: 'Back to sign in' } : undefined;
  }

  router.get('/callback/:slug', noStore, async (ctx) => {
    const outcome = await federatedLogin.callback(ctx, ctx.params.slug!);
    if (outcome.kind === 'redirect') {
      ctx.status = 303;
      return ctx.redirect(outcome.to);
    }
    const link = await backToSignIn(outcome.interactionUid);
    return renderPage(ctx, views, 'message', {
      title: 'Sign-in problem',
      heading: 'We could not sign you in',
      message: link ? outcome.message : `${outcome.message} Go back to the application and start again.`,
      link,
      alert: true,
    }, outcome.status);
  });

  async function linkPage(ctx: Context, extra: { error?: string; notice?: string; status?: number } = {}) {
    const pending = await federatedLogin.pendingLink(ctx);
    if (!pending) {
      return renderPage(ctx, views, 'message', {
        title: 'Link expired',
        heading: 'Nothing to link',
        message: 'This step expired or was already completed. Go back to the application and sign in again.',
        alert: true,
      }, 400);
    }
    return renderPage(ctx, views, 'link-account', {
      title: 'Link your account',
      connectionName: pending.connection.name,
      email: pending.link.email,
      emailVerified: pending.link.emailVerified,
      back: await backToSignIn(pending.link.interactionUid),
      error: extra.error,
      notice: extra.notice,
    }, extra.status);
  }

  router.get('/link-account', noStore, csrf, (ctx) => linkPage(ctx));

  // Proof by password: the local account's password links the upstream account, then signs in.
  router.post('/link-account', noStore, form, csrf, async (ctx) => {
    const pending = await federatedLogin.pendingLink(ctx);
    if (!pending?.link.emailVerified) return linkPage(ctx);
    const input = Password.safeParse(ctx.request.body);
    if (!input.success) return linkPage(ctx, { error: 'Enter your password.', status: 400 });
    const result = await authenticate({ login: pending.link.email, password: input.data.password, ip: ctx.ip, userAgent: ctx.get('user-agent') });
    if (!result.ok || result.user.id !== pending.link.userId) {
      const throttled = !result.ok && result.reason === 'throttled';
      if (throttled) ctx.set('retry-after', String(result.retryAfter));
      return linkPage(ctx, {
        error: throttled ? 'Too many failed attempts. Try again later, or use the emailed link.' : 'That password is not correct.',
        status: throttled ? 429 : 401,
      });
    }
    await federatedLogin.completeLink(ctx, result.user.id);
    ctx.status = 303;
    ctx.redirect(await preauth.complete(ctx, result.user.id, pending.link.interactionUid, 'pwd'));
  });

  // Proof by email: a magic link to the local account's address; opening it links and signs in.
  router.post('/link-account/email', noStore, form, csrf, async (ctx) => {
    const pending = await federatedLogin.pendingLink(ctx);
    if (!pending?.link.emailVerified) return linkPage(ctx);
    await handleForm(
      ctx,
      async () => {
        await accounts.requestMagicLink(pending.link.email, requestMeta(ctx), answered(ctx), pending.link.interactionUid);
        await linkPage(ctx, { notice: `We sent a link to ${pending.link.email}. Open it in this browser to link your ${pending.connection.name} account and continue.` });
      },
      (problem) => linkPage(ctx, { error: problem.message, status: problem.status }),
    );
  });

  router.post('/link-account/cancel', noStore, form, csrf, async (ctx) => {
    const pending = await federatedLogin.pendingLink(ctx);
    federatedLogin.cancelLink(ctx);
    const back = await backToSignIn(pending?.link.interactionUid);
    ctx.status = 303;
    ctx.redirect(back?.href ?? '/account');
  });

  return router.routes();
}
