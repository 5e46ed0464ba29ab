import type { Audit, RequestMeta } from '../audit/audit.service.js';
import { actorId, isAdmin, type Principal } from '../auth/principal.js';
import type { Apps } from '../clients/apps.service.js';
import { BUILT_IN_CLIENTS } from '../clients/clients.service.js';
import { AppError } from '../http/problem.js';
import { connectionChanges } from './connection-changes.js';
import { toConnectionDto, type ConnectionInput, type ConnectionPatch } from './connection-settings.js';
import type { ConnectionsService } from './connections.service.js';

/**
 * An app's upstream connections, managed by its owner (or its API key, or an admin): its own
 * connections, and which of its own and the global ones its login page offers.
 */
export function createAppConnections(deps: { apps: Apps; connections: ConnectionsService; audit: Audit; publicUrl: string }) {
  const { apps, connections, audit, publicUrl } = deps;
  const dto = (c: Parameters<typeof toConnectionDto>[0], offered: boolean) => ({ ...toConnectionDto(c, publicUrl), offered });

  /** Owners manage their apps; only admins choose what Latch's own sign-in pages offer. */
  async function authorize(actor: Principal, clientId: string, action: 'read' | 'update') {
    if (BUILT_IN_CLIENTS.has(clientId)) {
      if (!isAdmin(actor)) throw new AppError('CLIENT_NOT_FOUND');
      return apps.authorize(actor, clientId, 'read');
    }
    return apps.authorize(actor, clientId, action);
  }

  /** The app's own connection, or 404 (another app's connection looks absent). */
  async function own(clientId: string, connectionId: string) {
    const c = await connections.find(connectionId);
    if (c.ownerClientId !== clientId) throw new AppError('CONNECTION_NOT_FOUND');
    return c;
  }

  return {
    async list(actor: Principal, clientId: string) {
      await authorize(actor, clientId, 'read');
      return (await connections.forApp(clientId)).map(({ connection, offered }) => dto(connection, offered));
    },

    async create(actor: Principal, clientId: string, input: ConnectionInput, meta: RequestMeta) {
      await authorize(actor, clientId, 'update');
      // A connection of one app signs users in for that app only; Latch's own pages (its account
      // and console) offer global connections, which the sessions they start may use everywhere.
      if (BUILT_IN_CLIENTS.has(clientId)) throw new AppError('FORBIDDEN', "Latch's own clients offer global connections: create one with POST /api/connections, then offer it here.");
      const created = await connections.create(input, clientId);
      await audit.record('admin.connection_created', { actorId: actorId(actor), detail: { connectionId: created.id, slug: created.slug, clientId }, ...meta });
      return dto(created, true);
    },

    async update(actor: Principal, clientId: string, connectionId: string, patch: ConnectionPatch, meta: RequestMeta) {
      await authorize(actor, clientId, 'update');
      const before = await own(clientId, connectionId);
      const updated = await connections.update(connectionId, patch);
      const detail = { connectionId, clientId, fields: Object.keys(patch), changes: connectionChanges(before, updated) };
      await audit.record('admin.connection_updated', { actorId: actorId(actor), detail, ...meta });
      const offered = (await connections.forApp(clientId)).some((e) => e.offered && e.connection.id === connectionId);
      return dto(updated, offered);
    },

    async offer(actor: Principal, clientId: string, connectionId: string, meta: RequestMeta) {
      await authorize(actor, clientId, 'update');
      const c = await connections.offer(clientId, connectionId);
      await audit.record('admin.app_updated', { actorId: actorId(actor), detail: { clientId, offered: c.slug }, ...meta });
      return dto(c, true);
    },

    async withdraw(actor: Principal, clientId: string, connectionId: string, meta: RequestMeta) {
      await authorize(actor, clientId, 'update');
      const c = await connections.find(connectionId);
      await connections.withdraw(clientId, connectionId);
      const deleted = c.ownerClientId === clientId;
      await audit.record(deleted ? 'admin.connection_deleted' : 'admin.app_updated', { actorId: actorId(actor), detail: { clientId, withdrawn: c.slug }, ...meta });
    },
  };
}

export type AppConnections = ReturnType<typeof createAppConnections>;
