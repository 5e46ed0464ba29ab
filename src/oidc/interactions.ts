import Router, { type RouterContext } from '@koa/router';
import type { Middleware } from 'koa';
import Provider, { errors, type Interaction, type InteractionResults } from 'oidc-provider';
import { z } from 'zod';
import type { Authenticate } from '../auth/authenticate.js';
import type { Views } from '../http/views.js';
import type { ApiResourcesService } from '../resources/api-resources.service.js';
import type { AccountFlows } from '../accounts/account-flows.js';
import { AppError } from '../http/problem.js';
import { answered, requestMeta } from '../http/request-meta.js';
import { formBody } from '../http/form-body.js';
import { appOnlySignIn, type PreauthenticatedLogin } from './preauthenticated-login.js';
import type { SettingsService } from '../settings/settings.service.js';
import { applyConsent } from './grants.js';
import { describePermissions } from './scope-descriptions.js';
import type { ConnectionsService } from '../federation/connections.service.js';
import type { FederatedLogin } from '../federation/federated-login.js';
import type { AccountCache } from './account-cache.js';
import { UpstreamError, setupFault, upstreamsFault } from '../federation/upstream.js';

type Deps = {
  provider: Provider;
  views: Views;
  resources: ApiResourcesService;
  authenticate: Authenticate;
  csrf: Middleware;
  accounts: AccountFlows;
  preauth: PreauthenticatedLogin;
  settings: SettingsService;
  connections: ConnectionsService;
  federatedLogin: FederatedLogin;
  accountCache: AccountCache;
};

const WRONG_CREDENTIALS = 'The email, username or password is not correct.';
const LoginForm = z.object({ login: z.string().trim().min(1).max(320), password: z.string().min(1).max(1024) });
const MagicLinkForm = z.object({ email: z.email().max(254) });

/** The pages oidc-provider sends the browser to: login, consent, abort. */
export function interactionRoutes({ provider, views, accountCache, resources, authenticate, csrf, accounts, preauth, settings, connections, federatedLogin }: Deps) {
  const router = new Router({ prefix: '/interaction/:uid' });
  const form = formBody();

  async function details(ctx: RouterContext) {
    const interaction = await provider.interactionDetails(ctx.req, ctx.res);
    if (interaction.uid !== ctx.params.uid) throw new errors.SessionNotFound('interaction mismatch');
    return interaction;
  }

  /**
   * Stores the result on the interaction this request already loaded and resumes the provider.
   * (provider.interactionResult would load the interaction and its session again: two more reads.)
   */
  async function finish(ctx: RouterContext, interaction: Interaction, result: InteractionResults) {
    interaction.result = result;
    await interaction.save(interaction.exp - Math.floor(Date.now() / 1000));
    ctx.status = 303;
    ctx.redirect(interaction.returnTo);
  }

  async function renderLogin(ctx: RouterContext, uid: string, clientId: unknown, extra: { error?: string; notice?: string; login?: string } = {}) {
    const [client, upstreams] = await Promise.all([provider.Client.find(String(clientId)), connections.offeredTo(String(clientId))]);
    ctx.type = 'html';
    ctx.body = await views.render('login', {
      connections: upstreams.map((c) => ({ slug: c.slug, name: c.name, kind: c.kind })),
      title: 'Sign in',
      uid,
      client,
      csrfToken: ctx.state.csrfToken,
      error: extra.error,
      notice: extra.notice,
      login: extra.login ?? '',
      registrationOpen: settings.snapshot().registrationOpen,
    });
  }

  router.use(async (ctx, next) => {
    ctx.set('cache-control', 'no-store');
    try {
      await next();
    } catch (err) {
      if (!(err instanceof errors.SessionNotFound)) throw err;
      ctx.status = 400;
      ctx.type = 'html';
      // An emailed sign-in link for this sign-in, opened in another browser than the one that asked.
      const account = ctx.params.uid ? preauth.moveToAccount(ctx, ctx.params.uid) : undefined;
      if (account) {
        ctx.body = await views.render('message', {
          title: 'Signed in',
          heading: 'Open the link in the browser that asked for it',
          message: 'The sign-in link worked, but the app\'s sign-in was started in another browser, so it cannot continue here. To sign in to the app, ask for a new link on its sign-in page and open that link in the same browser.',
          link: { href: account, label: 'Go to your account in this browser' },
        });
        return;
      }
      ctx.body = await views.render('error', {
        title: 'Sign-in expired',
        heading: 'This sign-in request has expired',
        message: 'Your sign-in took too long or was already completed.',
        hint: 'Go back to the application and start again.',
      });
    }
  });

  router.get('/', csrf, async (ctx) => {
    const interaction = await details(ctx);
    const { uid, prompt, params, session } = interaction;
    if (prompt.name === 'login') {
      // A magic link or an upstream sign-in in this browser moments ago completes the login.
      const done = preauth.take(ctx, interaction);
      if (done) return finish(ctx, interaction, { login: { accountId: done.userId, amr: [done.method], remember: true, ...(done.onlyFor ? { acr: appOnlySignIn(done.onlyFor) } : {}) } });
      return renderLogin(ctx, uid, params.client_id);
    }
    if (prompt.name !== 'consent') throw new errors.SessionNotFound(`unsupported prompt ${prompt.name}`);

    const client = await provider.Client.find(String(params.client_id));
    const user = session?.accountId ? await accountCache.get(session.accountId) : undefined;
    const known = new Map((await resources.list()).map((r) => [r.indicator, r.name]));
    ctx.type = 'html';
    ctx.body = await views.render('consent', {
      title: 'Allow access',
      uid,
      client,
      permissions: describePermissions(prompt.details, (i) => known.get(i) ?? i),
      accountLabel: user?.email ?? 'you',
      csrfToken: ctx.state.csrfToken,
    });
  });

  router.post('/login', form, csrf, async (ctx) => {
    const interaction = await details(ctx);
    const { uid, prompt, params } = interaction;
    if (prompt.name !== 'login') throw new errors.SessionNotFound('login already completed');
    const input = LoginForm.safeParse(ctx.request.body);
    if (!input.success) {
      // Longer than any login or password an account can have: not correct, rather than missing.
      const tooLong = input.error.issues.some((i) => i.code === 'too_big');
      ctx.status = tooLong ? 401 : 400;
      return renderLogin(ctx, uid, params.client_id, { error: tooLong ? WRONG_CREDENTIALS : 'Enter your email or username and your password.' });
    }
    const result = await authenticate({ ...input.data, ip: ctx.ip, userAgent: ctx.get('user-agent') });
    if (!result.ok) {
      const throttled = result.reason === 'throttled';
      ctx.status = throttled ? 429 : result.reason === 'email_not_verified' ? 403 : 401;
      if (throttled) ctx.set('retry-after', String(result.retryAfter));
      const error = throttled
        ? `Too many failed attempts. Try again in ${Math.ceil(result.retryAfter / 60)} minute(s).`
        : result.reason === 'email_not_verified'
          ? 'Confirm your email address first: follow the link we sent you.'
          : WRONG_CREDENTIALS;
      return renderLogin(ctx, uid, params.client_id, { error, login: input.data.login });
    }
    return finish(ctx, interaction, { login: { accountId: result.user.id, amr: ['pwd'], remember: true } });
  });

  router.post('/magic-link', form, csrf, async (ctx) => {
    const { uid, prompt, params } = await details(ctx);
    if (prompt.name !== 'login') throw new errors.SessionNotFound('login already completed');
    const input = MagicLinkForm.safeParse(ctx.request.body);
    if (!input.success) {
      ctx.status = 400;
      return renderLogin(ctx, uid, params.client_id, { error: 'Enter your email address to get a sign-in link.' });
    }
    try {
      await accounts.requestMagicLink(input.data.email, requestMeta(ctx), answered(ctx), uid);
    } catch (err) {
      if (!(err instanceof AppError) || err.status !== 429) throw err;
      ctx.status = 429;
      return renderLogin(ctx, uid, params.client_id, { error: err.message });
    }
    return renderLogin(ctx, uid, params.client_id, {
      notice: `If an account exists for ${input.data.email}, we sent it a sign-in link. Open it in this browser to continue.`,
    });
  });

  // "Continue with GitHub": leave for the upstream provider, if this app's login page offers it.
  router.post('/connection/:slug', form, csrf, async (ctx) => {
    const { uid, prompt, params } = await details(ctx);
    if (prompt.name !== 'login') throw new errors.SessionNotFound('login already completed');
    const connection = await connections.findBySlug(ctx.params.slug!);
    if (!connection || !(await connections.isOfferedTo(String(params.client_id), connection))) {
      ctx.status = 404;
      return renderLogin(ctx, uid, params.client_id, { error: 'This sign-in option is not available for this app.' });
    }
    try {
      const to = await federatedLogin.start(ctx, connection, uid);
      ctx.status = 303;
      return ctx.redirect(to);
    } catch (err) {
      if (!(err instanceof UpstreamError)) throw err;
      ctx.status = upstreamsFault(err.reason) ? 502 : setupFault(err.reason) ? 503 : 400;
      return renderLogin(ctx, uid, params.client_id, { error: `${err.message} Try again later, or sign in another way.` });
    }
  });

  router.post('/confirm', form, csrf, async (ctx) => {
    const interaction = await details(ctx);
    const { prompt, params, session, grantId } = interaction;
    if (prompt.name !== 'consent' || !session?.accountId) throw new errors.SessionNotFound('nothing to consent to');
    const grant = grantId
      ? await provider.Grant.find(grantId)
      : new provider.Grant({ accountId: session.accountId, clientId: String(params.client_id) });
    if (!grant) throw new errors.SessionNotFound('grant expired');
    const savedId = await applyConsent(grant, prompt.details).save();
    return finish(ctx, interaction, { consent: { grantId: grantId ?? savedId } });
  });

  router.post('/abort', form, csrf, async (ctx) => {
    return finish(ctx, await details(ctx), { error: 'access_denied', error_description: 'The user denied the request' });
  });

  return router.routes();
}
