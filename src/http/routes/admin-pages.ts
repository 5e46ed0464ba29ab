import Router from '@koa/router';
import type { Context, Next } from 'koa';
import { isAdmin, isStaff, type Principal } from '../../auth/principal.js';
import { ACCOUNT_CLIENT_ID } from '../../oidc/first-party-clients.js';
import { ownPagesSession } from '../../oidc/preauthenticated-login.js';
import { adminOnly, createKit, type Admin, type AdminDeps } from './admin-page-kit.js';
import { adminUserPages } from './admin-users-pages.js';
import { adminAppPages } from './admin-apps-pages.js';
import { adminOpsPages } from './admin-ops-pages.js';
import { adminConnectionPages } from './admin-connections-pages.js';
import { formBody, noStore } from './page-forms.js';

/**
 * /admin: the admin console, server-rendered and usable without JavaScript. Who is signed in is
 * read from the provider's browser session (as on /account); every rule about who may do what
 * lives in the services it calls. Staff see the user pages only; admins see everything.
 */
export function adminPageRoutes(deps: AdminDeps) {
  const { provider, users, usersAdmin, apps, prisma, views, csrf } = deps;
  const router = new Router({ prefix: '/admin' });
  const kit = createKit(views);

  /** Signed in, active, and staff or admin; otherwise a sign-in redirect or the 403 page. */
  async function guard(ctx: Context, next: Next) {
    const session = await ownPagesSession(provider, ctx);
    const user = session?.accountId ? await users.findById(session.accountId) : null;
    if (!user?.active) {
      // A form posted after the session ended cannot be replayed: come back to the console.
      const back = ctx.method === 'GET' || ctx.method === 'HEAD' ? ctx.originalUrl : '/admin';
      ctx.status = 303;
      ctx.redirect(`/account/login?${new URLSearchParams({ next: back })}`);
      return;
    }
    const principal: Principal = { kind: 'user', user, clientId: ACCOUNT_CLIENT_ID };
    if (!isStaff(principal)) return kit.forbidden(ctx, 'The admin console is for admins and staff.');
    ctx.state.admin = { user, principal, isAdmin: isAdmin(principal) } satisfies Admin;
    await next();
  }

  // Personal data and one-time secrets: never cached. Forms: parsed here, CSRF-checked, then the guard.
  router.use(noStore, formBody(), csrf, guard);

  router.get('/', async (ctx) => {
    const { principal, isAdmin: admin } = ctx.state.admin as Admin;
    if (!admin) {
      ctx.status = 303;
      ctx.redirect('/admin/users');
      return;
    }
    const live = { OR: [{ expiresAt: null }, { expiresAt: { gt: new Date() } }] };
    const [userPage, appList, sessions] = await Promise.all([
      usersAdmin.list(principal, { pageSize: 1 }),
      apps.list(principal),
      prisma.oidcPayload.count({ where: { model: 'Session', accountId: { not: null }, ...live } }),
    ]);
    await kit.page(ctx, 'index', 'dashboard', { title: 'Admin console', counts: { users: userPage.total, apps: appList.length, sessions } });
  });

  const only = adminOnly(kit);
  const { renderUser } = adminUserPages(router, deps, kit, only);
  adminAppPages(router, deps, kit, only);
  adminConnectionPages(router, deps, kit, only);
  // A session or grant revoked from a user's page is refused (box not ticked) on that page.
  adminOpsPages(router, deps, kit, only, renderUser);
  return router.routes();
}
