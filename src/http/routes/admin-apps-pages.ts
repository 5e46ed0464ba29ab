import type Router from '@koa/router';
import type { Context, Middleware } from 'koa';
import { GRANT_TYPES, type ClientSummary } from '../../clients/clients.service.js';
import { ACCOUNT_CLIENT_ID, API_CLIENT_ID } from '../../oidc/first-party-clients.js';
import { AppError } from '../problem.js';
import { requestMeta } from '../request-meta.js';
import { adminOf, assertConfirmed, fieldList, lines, noticeOf, pageNumber, pager, withMessages, withNotice, type AdminDeps, type Kit } from './admin-page-kit.js';
import { field, type FormProblem } from './page-forms.js';

// Latch's own clients are rewritten from the configuration at every start; editing or deleting
// them here would break /api/auth and /account until then.
const BUILT_IN = new Set([API_CLIENT_ID, ACCOUNT_CLIENT_ID]);

const GRANT_LABELS: Record<(typeof GRANT_TYPES)[number], string> = {
  authorization_code: 'Authorization code (users sign in)',
  refresh_token: 'Refresh token',
  client_credentials: 'Client credentials (machine to machine)',
  password: 'Password (first-party apps only)',
};

const uri = (kind: string) => (_issue: unknown, value: unknown) =>
  typeof value !== 'string'
    ? `Use at most 20 ${kind}s.`
    : value.includes('#')
      ? `“${value}” is not a valid ${kind}: it must not contain a #fragment.`
      : `“${value}” is not a valid ${kind}: use an absolute URL such as https://app.example.com/callback.`;

const MESSAGES = {
  name: 'Enter a name of 1 to 100 characters.',
  redirectUris: uri('redirect URI'),
  postLogoutRedirectUris: uri('post-logout redirect URI'),
  grantTypes: 'Choose at least one grant type from the list.',
  scopes: (_issue: unknown, value: unknown) => (typeof value === 'string' ? `“${value}” is not a valid scope: use letters, digits and punctuation without quotes or backslashes.` : 'Use at most 50 scopes.'),
  resources: (_issue: unknown, value: unknown) => (typeof value === 'string' ? `“${value}” is not a valid resource indicator: use an absolute URL.` : 'Use at most 20 resource indicators.'),
};

// The app page's list of users with access, a page at a time (as the users page).
const USERS_PAGE_SIZE = 20;

const LIST_NOTICES = { app_deleted: 'The app is deleted, with every grant, token and API key it held.' };
const APP_NOTICES = { created: 'The app is registered.', saved: 'The changes are saved.' };

// The page that shows a new secret or key, once, by what made it.
const SHOWN = {
  registered: { heading: 'App registered', label: 'Client secret', usage: 'Give it to the app with its client ID; it authenticates at the token endpoint with HTTP Basic.' },
  rotated: { heading: 'New client secret', label: 'Client secret', usage: 'The old secret no longer works: give this one to the app now.' },
  apiKey: { heading: 'New API key', label: 'API key', usage: 'Send it as a bearer token to manage this app through the API. Earlier keys of the app no longer work.' },
};
type Shown = keyof typeof SHOWN;

type Values = { name: string; redirectUris: string; postLogoutRedirectUris: string; scopes: string; resources: string; grantTypes: string[]; public: boolean; native: boolean; trusted: boolean };

const formValues = (ctx: Context): Values => ({
  name: field(ctx, 'name').trim(),
  redirectUris: field(ctx, 'redirectUris'),
  postLogoutRedirectUris: field(ctx, 'postLogoutRedirectUris'),
  scopes: field(ctx, 'scopes'),
  resources: field(ctx, 'resources'),
  grantTypes: fieldList(ctx, 'grantTypes'),
  public: field(ctx, 'public') !== '',
  native: field(ctx, 'native') !== '',
  trusted: field(ctx, 'trusted') !== '',
});

const summaryValues = (app: ClientSummary): Values => ({
  name: app.name,
  redirectUris: app.redirectUris.join('\n'),
  postLogoutRedirectUris: app.postLogoutRedirectUris.join('\n'),
  scopes: app.scopes.join(' '),
  resources: app.resources.join('\n'),
  grantTypes: app.grantTypes,
  public: app.public,
  native: app.native,
  trusted: app.trusted,
});

const fields = (v: Values) => ({
  name: v.name,
  redirectUris: lines(v.redirectUris),
  postLogoutRedirectUris: lines(v.postLogoutRedirectUris),
  grantTypes: v.grantTypes as (typeof GRANT_TYPES)[number][],
  scopes: v.scopes.split(/\s+/).filter(Boolean),
  resources: lines(v.resources),
  native: v.native,
  trusted: v.trusted,
});

/** The apps pages (every client, Latch's own included): admins only. */
export function adminAppPages(router: Router, deps: AdminDeps, kit: Kit, adminOnly: Middleware) {
  const { apps, prisma, oneTimeSecrets } = deps;
  const appPath = (id: string) => `/admin/apps/${encodeURIComponent(id)}`;
  const secretPath = (id: string) => `${appPath(id)}/secret`;

  async function owners(ids: (string | null)[]) {
    const wanted = [...new Set(ids.filter((id): id is string => Boolean(id)))];
    const rows = wanted.length ? await prisma.user.findMany({ where: { id: { in: wanted } }, select: { id: true, email: true } }) : [];
    return Object.fromEntries(rows.map((r) => [r.id, r.email]));
  }

  async function renderList(ctx: Context, extra: { problem?: FormProblem; values?: Values } = {}) {
    const list = await apps.list(adminOf(ctx).principal);
    await kit.page(ctx, 'apps', 'apps', {
      title: 'Apps',
      apps: list,
      builtIn: BUILT_IN,
      owners: await owners(list.map((a) => a.ownerId)),
      grantLabels: GRANT_LABELS,
      values: extra.values ?? { name: '', redirectUris: '', postLogoutRedirectUris: '', scopes: 'openid profile email', resources: '', grantTypes: ['authorization_code', 'refresh_token'], public: false, native: false, trusted: false },
      notice: noticeOf(ctx, LIST_NOTICES),
      error: extra.problem?.message,
      fields: extra.problem?.fields,
    }, extra.problem?.status);
  }

  async function renderApp(ctx: Context, id: string, extra: { problem?: FormProblem; values?: Values } = {}) {
    const { principal } = adminOf(ctx);
    const app = await apps.authorize(principal, id, 'read');
    const [keys, users, owner] = await Promise.all([apps.listApiKeys(principal, id), apps.users(principal, id, { page: pageNumber(ctx.query.page), pageSize: USERS_PAGE_SIZE }), owners([app.ownerId])]);
    const revoked = typeof ctx.query.count === 'string' && /^\d+$/.test(ctx.query.count) ? ctx.query.count : undefined;
    await kit.page(ctx, 'app', 'apps', {
      title: app.name,
      app,
      builtIn: BUILT_IN.has(app.clientId),
      owner: app.ownerId ? owner[app.ownerId] ?? app.ownerId : undefined,
      keys,
      users: users.items,
      usersPager: pager(appPath(id), {}, users.page, users.pageSize, users.total),
      grantLabels: GRANT_LABELS,
      values: extra.values ?? summaryValues(app),
      notice: noticeOf(ctx, { ...APP_NOTICES, revoked: `Every grant and token of the app is revoked (${revoked ?? 0}).` }),
      error: extra.problem?.message,
      fields: extra.problem?.fields,
    }, extra.problem?.status);
  }

  /**
   * A new secret or key goes to the page that shows it once (Post/Redirect/Get): reloading that
   * page makes no other. Returns where to redirect. Never in a URL; the console is never cached.
   */
  async function showOnce(ctx: Context, clientId: string, kind: Shown, secret: string | (() => Promise<string>)) {
    await oneTimeSecrets.hold(ctx, secretPath(clientId), adminOf(ctx).user, kind, secret);
    return secretPath(clientId);
  }

  /** Loads an app and refuses changes to Latch's own. */
  async function changeable(ctx: Context, id: string) {
    const app = await apps.authorize(adminOf(ctx).principal, id, 'update');
    if (BUILT_IN.has(app.clientId)) throw new AppError('FORBIDDEN', `${app.name} is built in: Latch manages it, and it cannot be changed here.`);
    return app;
  }

  router.get('/apps', adminOnly, (ctx) => renderList(ctx));

  router.post('/apps', adminOnly, async (ctx) => {
    const values = formValues(ctx);
    await kit.act(
      ctx,
      async () => {
        const input = { ...fields(values), public: values.public };
        const created = await withMessages(() => apps.create(adminOf(ctx).principal, input, requestMeta(ctx)), MESSAGES, input);
        if (!created.clientSecret) return withNotice(appPath(created.clientId), 'created');
        return showOnce(ctx, created.clientId, 'registered', created.clientSecret);
      },
      (problem) => renderList(ctx, { problem, values }),
    );
  });

  router.get('/apps/:id', adminOnly, (ctx) => renderApp(ctx, ctx.params.id!));

  router.get('/apps/:id/secret', adminOnly, async (ctx) => {
    const id = ctx.params.id!;
    const { principal, user } = adminOf(ctx);
    const app = await apps.authorize(principal, id, 'read');
    // Only a GET shows it: a HEAD (a link checker, a prefetch) would use up the one showing unseen.
    const held = ctx.method === 'GET' ? await oneTimeSecrets.take(ctx, secretPath(id), user.id) : undefined;
    const shown = held && Object.hasOwn(SHOWN, held.kind) ? { ...SHOWN[held.kind as Shown], secret: held.secret } : undefined;
    await kit.page(ctx, 'secret', 'apps', { title: shown?.heading ?? 'Shown once only', app, shown });
  });

  router.post('/apps/:id', adminOnly, async (ctx) => {
    const id = ctx.params.id!;
    const values = formValues(ctx);
    await kit.act(
      ctx,
      async () => {
        await changeable(ctx, id);
        const patch = fields(values);
        await withMessages(() => apps.update(adminOf(ctx).principal, id, patch, requestMeta(ctx)), MESSAGES, patch);
        return withNotice(appPath(id), 'saved');
      },
      (problem) => renderApp(ctx, id, { problem, values }),
    );
  });

  router.post('/apps/:id/secret', adminOnly, async (ctx) => {
    const id = ctx.params.id!;
    await kit.act(
      ctx,
      async () => {
        await changeable(ctx, id);
        assertConfirmed(ctx, 'confirmRotate', 'the current secret is to stop working');
        return showOnce(ctx, id, 'rotated', () => apps.rotateSecret(adminOf(ctx).principal, id, requestMeta(ctx)));
      },
      (problem) => renderApp(ctx, id, { problem }),
    );
  });

  router.post('/apps/:id/revoke', adminOnly, async (ctx) => {
    const id = ctx.params.id!;
    await kit.act(
      ctx,
      async () => {
        assertConfirmed(ctx, 'confirmRevoke', 'every token of this app is to be revoked');
        const count = await apps.revokeAll(adminOf(ctx).principal, id, requestMeta(ctx));
        return `${appPath(id)}?notice=revoked&count=${count}`;
      },
      (problem) => renderApp(ctx, id, { problem }),
    );
  });

  router.post('/apps/:id/api-keys', adminOnly, async (ctx) => {
    const id = ctx.params.id!;
    await kit.act(
      ctx,
      async () => {
        await changeable(ctx, id);
        assertConfirmed(ctx, 'confirmKey', 'the current API key is to stop working');
        return showOnce(ctx, id, 'apiKey', async () => (await apps.createApiKey(adminOf(ctx).principal, id, requestMeta(ctx))).key);
      },
      (problem) => renderApp(ctx, id, { problem }),
    );
  });

  router.post('/apps/:id/delete', adminOnly, async (ctx) => {
    const id = ctx.params.id!;
    await kit.act(
      ctx,
      async () => {
        await changeable(ctx, id);
        assertConfirmed(ctx, 'confirmDelete', 'this app is to be deleted');
        await apps.delete(adminOf(ctx).principal, id, requestMeta(ctx));
        return withNotice('/admin/apps', 'app_deleted');
      },
      (problem) => renderApp(ctx, id, { problem }),
    );
  });
}
