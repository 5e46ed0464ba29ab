import Router from '@koa/router';
import type { Context, Middleware } from 'koa';
import type Provider from 'oidc-provider';
import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { AccountFlows } from '../../accounts/account-flows.js';
import type { Audit } from '../../audit/audit.service.js';
import type { Config } from '../../config/env.js';
import type { FederatedAccounts } from '../../federation/federated-accounts.js';
import { ACCOUNT_CLIENT_ID } from '../../oidc/first-party-clients.js';
import { ownPagesSession } from '../../oidc/preauthenticated-login.js';
import type { User, UsersService } from '../../users/users.service.js';
import { AppError } from '../problem.js';
import { requestMeta } from '../request-meta.js';
import type { Views } from '../views.js';
import { activityItems, when } from './account-activity.js';
import { field, formBody, handleForm, noStore, renderPage, safeDecode, type FormProblem } from './page-forms.js';

type Deps = {
  config: Config;
  provider: Provider;
  views: Views;
  users: UsersService;
  audit: Audit;
  accounts: AccountFlows;
  federated: FederatedAccounts;
  csrf: Middleware;
};

type Section = 'profile' | 'password' | 'identities' | 'delete';
type Signed = { user: User; sessionUid: string; signedInAt?: number };

// The sign-in round trip's state: short-lived, signed, HttpOnly, sent only to /account.
const STATE_COOKIE = 'latch.account_state';
const STATE_SECONDS = 600;

const NOTICES: Record<string, (user: User) => string> = {
  profile: () => 'Your profile is saved.',
  email: (u) => `Your profile is saved. We sent a link to your new email address: the account moves to it when you follow the link, and keeps ${u.email} until then.`,
  password: () => 'Your password is changed. You were signed out everywhere else.',
  verification: (u) => `We sent a new confirmation link to ${u.email}.`,
  unlinked: () => 'The linked account is removed.',
};

/** A path on this server to return to after signing in ("/admin/users?page=2"), never another origin. */
function localPath(value: unknown): string | undefined {
  if (typeof value !== 'string' || value.length > 1000) return undefined;
  // "//host" and "/\\host" are other origins to a browser; control characters have no place here.
  if (!value.startsWith('/') || value.startsWith('//') || /[\\\x00-\x1f\x7f]/.test(value)) return undefined;
  return value;
}

/** Runs an account action whose field errors name a field that this page's form calls otherwise. */
async function renamingField<T>(from: string, to: string, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (err) {
    if (!(err instanceof AppError) || !err.errors) throw err;
    throw new AppError(err.code, err.detail, err.errors.map((e) => (e.path === from ? { ...e, path: to } : e)));
  }
}

// Compared as bytes: a string of the same length in characters may be longer in UTF-8.
const sameString = (a: string, b: string) => {
  const [x, y] = [Buffer.from(a), Buffer.from(b)];
  return x.length === y.length && timingSafeEqual(x, y);
};

/**
 * /account: the signed-in user's own account (profile, password, activity, deletion). The pages
 * sign in to the IdP itself as the first-party client latch-account (response_type=none); who is
 * signed in is read from the provider's browser session.
 */
export function accountPageRoutes({ config, provider, views, users, audit, accounts, federated, csrf }: Deps) {
  const router = new Router({ prefix: '/account' });
  const form = formBody();
  const { publicUrl, secureCookies } = config.http;
  const signOutUrl = `/o/session/end?${new URLSearchParams({ client_id: ACCOUNT_CLIENT_ID, post_logout_redirect_uri: `${publicUrl}/account` })}`;

  router.use(noStore);

  /** The signed-in user, or undefined after answering with a redirect to sign in. */
  async function signedIn(ctx: Context): Promise<Signed | undefined> {
    const session = await ownPagesSession(provider, ctx);
    const user = session?.accountId ? await users.findById(session.accountId) : null;
    if (session && user?.active) return { user, sessionUid: session.uid, signedInAt: session.authTime() };
    // No session, or one of a disabled or deleted user: the provider asks to sign in again.
    ctx.status = 303;
    ctx.redirect('/account/login');
    return undefined;
  }

  async function renderAccount(ctx: Context, user: User, extra: { section?: Section; problem?: FormProblem; values?: Record<string, string>; notice?: string } = {}) {
    const activity = (await audit.activityOf(user.id, { pageSize: 20 })).items;
    const identities = (await federated.listForUser(user.id)).map((i) => ({
      id: i.id,
      connection: i.connection,
      email: i.email ?? undefined,
      linkedAt: i.createdAt.toISOString(),
      linked: when(i.createdAt),
      usedAt: i.lastLoginAt?.toISOString(),
      used: i.lastLoginAt ? when(i.lastLoginAt) : undefined,
    }));
    await renderPage(ctx, views, 'account', {
      title: 'Your account',
      user,
      profile: extra.values ?? {
        givenName: user.givenName ?? '',
        familyName: user.familyName ?? '',
        name: user.name ?? '',
        username: user.username ?? '',
        email: user.email,
      },
      section: extra.section,
      error: extra.problem?.message,
      fields: extra.problem?.fields ?? {},
      notice: extra.notice,
      activity: activityItems(activity),
      identities,
      // Accounts made by an upstream sign-in have none until a reset link sets one.
      hasPassword: Boolean(user.passwordHash),
      pendingEmail: await accounts.pendingEmail(user.id),
      signOutUrl,
    }, extra.problem?.status);
  }

  /** A POST from the account page: signed in, CSRF-checked, its mistakes shown in its section. */
  const action = (section: Section, run: (ctx: Context, me: Signed) => Promise<string | void>, values?: (ctx: Context) => Record<string, string>) =>
    async (ctx: Context) => {
      const me = await signedIn(ctx);
      if (!me) return;
      await handleForm(
        ctx,
        async () => {
          const notice = await run(ctx, me);
          if (ctx.body !== undefined) return; // the action answered itself
          ctx.status = 303;
          ctx.redirect(notice ? `/account?notice=${notice}` : '/account');
        },
        (problem) => renderAccount(ctx, me.user, { section, problem, values: values?.(ctx) }),
      );
    };

  router.get('/login', async (ctx) => {
    const state = randomBytes(16).toString('base64url');
    // Where to go after signing in travels with the state, in the same signed cookie.
    const next = localPath(ctx.query.next);
    ctx.cookies.set(STATE_COOKIE, next ? `${state}.${encodeURIComponent(next)}` : state, { signed: true, httpOnly: true, sameSite: 'lax', secure: secureCookies, path: '/account', maxAge: STATE_SECONDS * 1000, overwrite: true });
    const query = new URLSearchParams({ client_id: ACCOUNT_CLIENT_ID, response_type: 'none', scope: 'openid', redirect_uri: `${publicUrl}/account/callback`, state });
    // After an emailed link or an upstream sign-in: sign in afresh, as the user they proved.
    if (ctx.query.prompt === 'login') query.set('prompt', 'login');
    ctx.status = 303;
    ctx.redirect(`${config.oidc.issuer}/auth?${query}`);
  });

  router.get('/callback', async (ctx) => {
    const stored = ctx.cookies.get(STATE_COOKIE, { signed: true }) ?? '';
    const dot = stored.indexOf('.');
    const [expected, storedNext] = dot < 0 ? [stored, ''] : [stored.slice(0, dot), stored.slice(dot + 1)];
    ctx.cookies.set(STATE_COOKIE, null, { signed: true, path: '/account', overwrite: true });
    const state = typeof ctx.query.state === 'string' ? ctx.query.state : '';
    const next = storedNext ? localPath(safeDecode(storedNext)) : undefined;
    if (!expected || !sameString(state, expected)) {
      return renderPage(ctx, views, 'message', {
        title: 'Sign-in expired',
        heading: 'This sign-in could not be completed',
        message: 'It took too long or was started in another window.',
        link: { href: '/account', label: 'Sign in again' },
        alert: true,
      }, 400);
    }
    if (ctx.query.error) {
      return renderPage(ctx, views, 'message', {
        title: 'Not signed in',
        heading: 'Not signed in',
        message: ctx.query.error === 'access_denied' ? 'The sign-in was cancelled.' : 'The sign-in did not complete.',
        link: { href: next ?? '/account', label: 'Sign in' },
      });
    }
    ctx.status = 303;
    ctx.redirect(next ?? '/account');
  });

  router.get('/', csrf, async (ctx) => {
    const me = await signedIn(ctx);
    if (!me) return;
    const code = ctx.query.notice;
    const notice = typeof code === 'string' && Object.hasOwn(NOTICES, code) ? NOTICES[code]!(me.user) : undefined;
    await renderAccount(ctx, me.user, { notice });
  });

  const profileValues = (ctx: Context) => ({
    givenName: field(ctx, 'givenName').trim(),
    familyName: field(ctx, 'familyName').trim(),
    name: field(ctx, 'name').trim(),
    username: field(ctx, 'username').trim(),
    email: field(ctx, 'email').trim(),
  });

  router.post('/profile', form, csrf, action('profile', async (ctx, { user, signedInAt }) => {
    const v = profileValues(ctx);
    const input = { givenName: v.givenName || null, familyName: v.familyName || null, name: v.name || null, username: v.username || null, email: v.email };
    // This form's password field is emailPassword: the password form below has currentPassword.
    const { pendingEmail } = await renamingField('currentPassword', 'emailPassword', () =>
      accounts.updateProfile(user, input, requestMeta(ctx), { currentPassword: field(ctx, 'emailPassword') || undefined, signedInAt }));
    return pendingEmail ? 'email' : 'profile';
  }, profileValues));

  router.post('/password', form, csrf, action('password', async (ctx, { user, sessionUid }) => {
    // The policy names the new password `password`; this form calls it newPassword.
    await renamingField('password', 'newPassword', () =>
      accounts.changePassword(user, field(ctx, 'currentPassword'), field(ctx, 'newPassword'), requestMeta(ctx), { sessionUid }));
    return 'password';
  }));

  router.post('/verification', form, csrf, action('profile', async (ctx, { user }) => {
    if (user.emailVerified) return undefined;
    await accounts.sendVerification(user, requestMeta(ctx));
    return 'verification';
  }));

  router.post('/identities/:id/remove', form, csrf, action('identities', async (ctx, { user }) => {
    try {
      await federated.unlink(user, ctx.params.id ?? '', requestMeta(ctx));
    } catch (err) {
      if (err instanceof AppError && err.code === 'LAST_SIGN_IN_METHOD') {
        throw new AppError(err.code, 'This is your only way to sign in, so it was not removed. Set a password first (with “Forgot your password?”), then remove it.');
      }
      if (err instanceof AppError && err.code === 'NOT_FOUND') throw new AppError(err.code, 'This linked account does not exist; it may already be removed.');
      throw err;
    }
    return 'unlinked';
  }));

  router.post('/delete', form, csrf, action('delete', async (ctx, { user, signedInAt }) => {
    // Without a password to type, a ticked box keeps one stray click from deleting the account.
    if (!user.passwordHash && !field(ctx, 'confirm')) {
      throw new AppError('VALIDATION_FAILED', 'Tick the box to confirm that you want to delete your account.', [{ path: 'deleteConfirm', message: 'required' }]);
    }
    // This form's password field is deletePassword (named password, for password managers).
    await renamingField('currentPassword', 'deletePassword', () =>
      accounts.deleteAccount(user, requestMeta(ctx), { currentPassword: field(ctx, 'password') || undefined, signedInAt }));
    await renderPage(ctx, views, 'message', {
      title: 'Account deleted',
      heading: 'Account deleted',
      message: `Your ${config.product.name} account and its data are deleted, and you are signed out everywhere.`,
    });
  }));

  return router.routes();
}
