import { z } from 'zod';
import type { Audit, RequestMeta } from '../audit/audit.service.js';
import { createdWith, fieldChanges, SECRET_CHANGED } from '../audit/changes.js';
import { actorId, isAdmin, isDeveloper, type Principal } from '../auth/principal.js';
import { AppError } from '../http/problem.js';
import type { ApiKeysService, OwnerRoles } from './api-keys.service.js';
import { ADMIN_SCOPE, AppUserQuery, BUILT_IN_CLIENTS, ClientPatch, NewClient, type ClientsService, type ClientSummary } from './clients.service.js';

// What a developer may set on their own app. Admins may also mark an app trusted (no consent),
// allow it the password grant, or give it the latch:admin scope (if no developer owns it).
export const AppInput = NewClient.omit({ ownerId: true });
export const AppPatch = ClientPatch;

/** What the audit log compares of an app before and after an edit: its settings, as the API shows them. */
const auditView = (app: ClientSummary) => ({
  name: app.name,
  public: app.public,
  trusted: app.trusted,
  grantTypes: app.grantTypes,
  redirectUris: app.redirectUris,
  postLogoutRedirectUris: app.postLogoutRedirectUris,
  scopes: app.scopes,
  resources: app.resources,
});

/**
 * Whether a user manages their own apps: while active, and a developer or admin. Their apps' API
 * keys act on their behalf by the same rule (api-keys.service), so a lost role stops those too.
 */
export const mayManageOwnApps = (owner: OwnerRoles) => owner.active && (owner.isAdmin || owner.isDeveloper);

/**
 * Whether an app may hold a privilege, given its owner's roles (null: no user owns it). The
 * privileges are the latch:admin scope (its client-credentials tokens manage Latch) and being
 * trusted (its users' tokens act as them at /api, and they are not asked to consent). The owner
 * holds the app's secret from its creation, so either would give them an admin's power: only an app
 * no user owns, or whose owner is an active admin, may. Checked when the privilege is given (here)
 * and when it is used (require-principal for the scope; the stores' client read for trust, which
 * counts an app as trusted only while this holds), for apps given it earlier and owners who lose
 * the admin role later.
 */
export const mayHoldPrivileges = (owner: OwnerRoles | null | undefined) => owner === null || Boolean(owner?.active && owner.isAdmin);

/** Whether the app holds a privilege (see mayHoldPrivileges). */
const privileged = (app: { trusted?: boolean; scopes?: string[] }) => app.trusted === true || Boolean(app.scopes?.includes(ADMIN_SCOPE));

// API keys act for their app only, and cannot delete it.
type Action = 'read' | 'update' | 'revoke' | 'delete';

export function createApps(deps: { clients: ClientsService; apiKeys: ApiKeysService; audit: Audit }) {
  const { clients, apiKeys, audit } = deps;

  function assertPrivilegesOk(actor: Principal, app: { trusted?: boolean; grantTypes?: string[]; scopes?: string[] }) {
    if (isAdmin(actor)) return;
    if (app.trusted) throw new AppError('FORBIDDEN', 'Only admins may mark an app trusted.');
    if (app.grantTypes?.includes('password')) throw new AppError('FORBIDDEN', 'Only admins may allow the password grant.');
    if (app.scopes?.includes(ADMIN_SCOPE)) throw new AppError('FORBIDDEN', `Only admins may give an app the ${ADMIN_SCOPE} scope.`);
  }

  /** Refuses a privilege (see mayHoldPrivileges) to an app whose owner may not hold it. */
  function assertOwnerMayHold(owner: OwnerRoles | null | undefined, app: { trusted?: boolean; scopes?: string[] }) {
    if (!privileged(app) || mayHoldPrivileges(owner)) return;
    const [what, path] = app.scopes?.includes(ADMIN_SCOPE) ? [`have the ${ADMIN_SCOPE} scope`, 'scopes'] : ['be trusted', 'trusted'];
    const message = `Only an app owned by an admin (or by no one) may ${what}: its owner holds its secret and would act as an admin. Register a separate app for this, or make the owner an admin first.`;
    throw new AppError('FORBIDDEN', message, [{ path, message }]);
  }

  /**
   * The app's credentials (its secret, API keys) are as strong as the app: for an app with the
   * latch:admin scope they manage Latch, and a trusted app's signs users in to /api without asking
   * them, so only admins may mint them, not its key or owner.
   */
  function assertMayMintCredentials(actor: Principal, app: ClientSummary) {
    if (!isAdmin(actor) && privileged(app)) throw new AppError('FORBIDDEN', `Only admins may rotate the secret of, or create API keys for, an app that is trusted or has the ${ADMIN_SCOPE} scope.`);
  }

  /**
   * Loads an app the principal may act on. Others' apps look absent (404), not forbidden; an app's
   * own key may not delete it (403); Latch's built-in clients are read-only (403).
   */
  async function authorize(actor: Principal, clientId: string, action: Action): Promise<ClientSummary> {
    const app = await clients.find(clientId).catch((err: unknown) => {
      if (err instanceof AppError && err.code === 'CLIENT_NOT_FOUND') return undefined;
      throw err;
    });
    const visible =
      app &&
      (isAdmin(actor) ||
        (actor.kind === 'user' && app.ownerId === actor.user.id && mayManageOwnApps(actor.user)) ||
        (actor.kind === 'apiKey' && actor.clientId === clientId));
    if (!app || !visible) throw new AppError('CLIENT_NOT_FOUND');
    if (actor.kind === 'apiKey' && action === 'delete') throw new AppError('FORBIDDEN', 'An API key cannot delete its app.');
    if (BUILT_IN_CLIENTS.has(clientId) && action !== 'read' && action !== 'revoke') throw new AppError('FORBIDDEN', 'Built-in clients are managed by Latch.');
    return app;
  }

  return {
    authorize,

    async create(actor: Principal, input: z.input<typeof AppInput>, meta: RequestMeta) {
      if (!isDeveloper(actor) || actor.kind === 'apiKey') throw new AppError('FORBIDDEN', 'Only developers and admins may create apps.');
      const data = AppInput.parse(input);
      assertPrivilegesOk(actor, data);
      // The creator owns the app (a service's own client owns none); assertPrivilegesOk let only admins this far.
      assertOwnerMayHold(actor.kind === 'user' ? actor.user : null, data);
      const created = await clients.create({ ...data, ownerId: actor.kind === 'user' ? actor.user.id : undefined });
      await audit.record('admin.app_created', { actorId: actorId(actor), detail: { clientId: created.clientId, changes: createdWith(auditView(created.client)) }, ...meta });
      return created;
    },

    async list(actor: Principal) {
      if (actor.kind === 'apiKey') return [await clients.find(actor.clientId)];
      if (isAdmin(actor)) return clients.list();
      if (!isDeveloper(actor) || actor.kind !== 'user') throw new AppError('FORBIDDEN', 'Only developers and admins have apps.');
      return clients.list({ ownerId: actor.user.id });
    },

    async update(actor: Principal, clientId: string, patch: z.input<typeof AppPatch>, meta: RequestMeta) {
      const before = await authorize(actor, clientId, 'update');
      const changes = AppPatch.parse(patch);
      assertPrivilegesOk(actor, changes);
      // Its redirect URIs decide where users' tokens go without their consent: admins only.
      if (before.trusted && !isAdmin(actor)) throw new AppError('FORBIDDEN', 'Only admins may change a trusted app.');
      // An admin may give a privilege, but not to an app a developer owns. Only what this edit
      // gives is checked: an app that holds one already (the console sends every field) can still
      // be edited, and its privilege stays without effect while its owner is no admin.
      const given = {
        trusted: changes.trusted === true && !before.trusted,
        scopes: changes.scopes?.includes(ADMIN_SCOPE) && !before.scopes.includes(ADMIN_SCOPE) ? [ADMIN_SCOPE] : [],
      };
      if (privileged(given)) assertOwnerMayHold(await apiKeys.ownerRoles(clientId), given);
      const app = await clients.update(clientId, changes);
      const detail = { clientId, fields: Object.keys(changes), changes: fieldChanges(auditView(before), auditView(app)) };
      await audit.record('admin.app_updated', { actorId: actorId(actor), detail, ...meta });
      return app;
    },

    async rotateSecret(actor: Principal, clientId: string, meta: RequestMeta) {
      assertMayMintCredentials(actor, await authorize(actor, clientId, 'update'));
      const clientSecret = await clients.rotateSecret(clientId);
      await audit.record('admin.app_secret_rotated', { actorId: actorId(actor), detail: { clientId, changes: { clientSecret: SECRET_CHANGED } }, ...meta });
      return clientSecret;
    },

    async revokeAll(actor: Principal, clientId: string, meta: RequestMeta) {
      await authorize(actor, clientId, 'revoke');
      const { count } = await clients.revokeAll(clientId);
      await audit.record('admin.app_revoked', { actorId: actorId(actor), detail: { clientId, count }, ...meta });
      return count;
    },

    async delete(actor: Principal, clientId: string, meta: RequestMeta) {
      await authorize(actor, clientId, 'delete');
      await clients.delete(clientId);
      await audit.record('admin.app_deleted', { actorId: actorId(actor), detail: { clientId }, ...meta });
    },

    async createApiKey(actor: Principal, clientId: string, meta: RequestMeta) {
      assertMayMintCredentials(actor, await authorize(actor, clientId, 'update'));
      const key = await apiKeys.create(clientId, actor.kind === 'user' ? actor.user.id : undefined);
      await audit.record('admin.api_key_created', { actorId: actorId(actor), detail: { clientId, prefix: key.prefix }, ...meta });
      return key;
    },

    async listApiKeys(actor: Principal, clientId: string) {
      await authorize(actor, clientId, 'read');
      return apiKeys.list(clientId);
    },

    async users(actor: Principal, clientId: string, query?: z.input<typeof AppUserQuery>) {
      await authorize(actor, clientId, 'read');
      return clients.users(clientId, query, { asConsented: !isAdmin(actor) });
    },
  };
}

export type Apps = ReturnType<typeof createApps>;
