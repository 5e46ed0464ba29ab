import type { Db } from '../db/prisma.js';
import type { Connection } from '../generated/sqlite/client.js';
import { isUniqueViolation } from '../db/errors.js';
import { AppError } from '../http/problem.js';
import { ConnectionInput, ConnectionPatch, ENDPOINTS, defaultScopes, effectiveSettings, kindProblems } from './connection-settings.js';
import { SecretKeyMissingError, type SecretBox } from './secret-box.js';

export type { Connection };

// The login page asks which connections a client offers on every sign-in: remembered briefly per
// process, forgotten at once on this process's changes, within this long on the others'.
const OFFERED_CACHE_MS = 5000;

export function createConnectionsService(prisma: Db, secrets: SecretBox) {
  const offeredCache = new Map<string, { until: number; value: Promise<Connection[]> }>();
  const changed = <T>(result: T) => {
    offeredCache.clear();
    return result;
  };
  async function seal(secret: string | null | undefined) {
    if (!secret) return secret;
    try {
      return await secrets.seal(secret);
    } catch (err) {
      if (err instanceof SecretKeyMissingError) throw new AppError('CONNECTION_KEY_MISSING');
      throw err;
    }
  }

  async function find(id: string) {
    const found = await prisma.connection.findUnique({ where: { id } });
    if (!found) throw new AppError('CONNECTION_NOT_FOUND');
    return found;
  }

  return {
    find,
    findBySlug: (slug: string) => prisma.connection.findUnique({ where: { slug } }),

    /** A global connection (no owner), or one owned by an app and offered on its login page. */
    async create(input: ConnectionInput, ownerClientId?: string): Promise<Connection> {
      const data = ConnectionInput.parse(input);
      try {
        const created = await prisma.connection.create({
          data: {
            slug: data.slug,
            kind: data.kind,
            name: data.name,
            clientId: data.clientId,
            clientSecret: (await seal(data.clientSecret)) ?? null,
            issuer: data.issuer ?? null,
            authorizationUrl: data.authorizationUrl ?? null,
            tokenUrl: data.tokenUrl ?? null,
            userinfoUrl: data.userinfoUrl ?? null,
            scopes: (data.scopes ?? defaultScopes(data.kind)).join(' '),
            claimMapping: data.claimMapping ?? undefined,
            ownerClientId: ownerClientId ?? null,
            enabled: data.enabled ?? true,
          },
        });
        if (ownerClientId) await prisma.clientConnection.create({ data: { clientId: ownerClientId, connectionId: created.id } });
        return changed(created);
      } catch (err) {
        if (isUniqueViolation(err)) throw new AppError('CONNECTION_SLUG_TAKEN');
        throw err;
      }
    },

    async update(id: string, patch: ConnectionPatch): Promise<Connection> {
      const current = await find(id);
      const data = ConnectionPatch.parse(patch);
      const next = { ...current, ...data, clientSecret: data.clientSecret === undefined ? current.clientSecret : await seal(data.clientSecret) };
      // The kind's requirements hold after the change too.
      const problems = kindProblems(next);
      if (problems.length) throw new AppError('VALIDATION_FAILED', undefined, problems.map((p) => ({ path: p.path.join('.'), message: p.message })));
      // A linked account is a subject, read from a claim, at these endpoints. Pointed elsewhere, or
      // read from another claim, the same value may be anyone (GitHub ids are public, and a login
      // is chosen by its user): the links made so far end with the change.
      const [was, will] = [effectiveSettings(current), effectiveSettings({ ...current, ...data, scopes: current.scopes, claimMapping: data.claimMapping === undefined ? current.claimMapping : data.claimMapping } as Connection)];
      const moved = ENDPOINTS.some((k) => was[k] !== will[k]) || was.claims.subject !== will.claims.subject;
      const update = prisma.connection.update({
        where: { id },
        data: {
          name: data.name,
          clientId: data.clientId,
          clientSecret: next.clientSecret,
          issuer: data.issuer,
          authorizationUrl: data.authorizationUrl,
          tokenUrl: data.tokenUrl,
          userinfoUrl: data.userinfoUrl,
          scopes: data.scopes?.join(' '),
          claimMapping: data.claimMapping,
          enabled: data.enabled,
        },
      });
      const updated = moved ? (await prisma.$transaction([prisma.federatedIdentity.deleteMany({ where: { connectionId: id } }), update]))[1] : await update;
      return changed(updated);
    },

    /** Deletes the connection; users who signed in through it keep their local accounts. */
    async delete(id: string) {
      await find(id);
      await prisma.$transaction([
        prisma.federatedIdentity.deleteMany({ where: { connectionId: id } }),
        prisma.clientConnection.deleteMany({ where: { connectionId: id } }),
        prisma.connection.delete({ where: { id } }),
      ]);
      changed(undefined);
    },

    /** Global connections, or those of one app. */
    list: (filter: { ownerClientId: string | null }) =>
      prisma.connection.findMany({ where: { ownerClientId: filter.ownerClientId }, orderBy: [{ createdAt: 'asc' }, { id: 'asc' }] }),

    /** What an app may offer (its own and the global connections), each marked offered or not. */
    async forApp(clientId: string) {
      const [rows, links] = await Promise.all([
        prisma.connection.findMany({ where: { OR: [{ ownerClientId: null }, { ownerClientId: clientId }] }, orderBy: [{ createdAt: 'asc' }, { id: 'asc' }] }),
        prisma.clientConnection.findMany({ where: { clientId }, select: { connectionId: true } }),
      ]);
      const offered = new Set(links.map((l) => l.connectionId));
      return rows.map((c) => ({ connection: c, offered: offered.has(c.id) }));
    },

    /** Offers a connection on an app's login page: a global one, or the app's own. */
    async offer(clientId: string, connectionId: string) {
      const c = await find(connectionId);
      if (c.ownerClientId !== null && c.ownerClientId !== clientId) throw new AppError('CONNECTION_NOT_FOUND');
      // Prisma's upsert on a two-column key reads, then inserts: a request offering the same
      // connection at once inserts it first, and this one finds it offered, as asked.
      await prisma.clientConnection.upsert({ where: { clientId_connectionId: { clientId, connectionId } }, create: { clientId, connectionId }, update: {} }).catch((err: unknown) => {
        if (!isUniqueViolation(err)) throw err;
      });
      return changed(c);
    },

    /** Stops offering a connection; an app's own connection is deleted with it. */
    async withdraw(clientId: string, connectionId: string) {
      const c = await find(connectionId);
      if (c.ownerClientId === clientId) return this.delete(connectionId);
      if (c.ownerClientId !== null) throw new AppError('CONNECTION_NOT_FOUND');
      await prisma.clientConnection.deleteMany({ where: { clientId, connectionId } });
      changed(undefined);
    },

    /** The enabled connections a client's login page shows: the global ones it chose, and its own. */
    offeredTo(clientId: string): Promise<Connection[]> {
      const hit = offeredCache.get(clientId);
      if (hit && hit.until > Date.now()) return hit.value;
      const value = (async () => {
        const links = await prisma.clientConnection.findMany({ where: { clientId }, select: { connectionId: true } });
        if (!links.length) return [];
        return prisma.connection.findMany({
          where: { id: { in: links.map((l) => l.connectionId) }, enabled: true, OR: [{ ownerClientId: null }, { ownerClientId: clientId }] },
          orderBy: [{ name: 'asc' }],
        });
      })();
      offeredCache.set(clientId, { until: Date.now() + OFFERED_CACHE_MS, value });
      value.catch(() => offeredCache.delete(clientId));
      return value;
    },

    /** Whether the client's login page offers this connection (checked again when a sign-in starts). */
    async isOfferedTo(clientId: string, c: Connection) {
      if (!c.enabled || (c.ownerClientId !== null && c.ownerClientId !== clientId)) return false;
      return (await prisma.clientConnection.count({ where: { clientId, connectionId: c.id } })) > 0;
    },

    clientSecretOf: (c: Connection) => (c.clientSecret ? secrets.open(c.clientSecret) : Promise.resolve(undefined)),
  };
}

export type ConnectionsService = ReturnType<typeof createConnectionsService>;
