import { randomBytes } from 'node:crypto';
import { sqltag as sql } from '@prisma/client/runtime/client';
import { PageQuery, pageOfIds } from '../db/paged-ids.js';
import { z } from 'zod';
import type { Db } from '../db/prisma.js';
import { AppError } from '../http/problem.js';
import { isUniqueViolation } from '../db/errors.js';
import { generateClientSecret, hashClientSecret } from './client-secret.js';

// `password` is for first-party clients an admin marks; the apps API never offers it.
export const GRANT_TYPES = ['authorization_code', 'refresh_token', 'client_credentials', 'password'] as const;
// Lets a client's client-credentials tokens call the management API as an admin.
export const ADMIN_SCOPE = 'latch:admin';
// A client registered without scopes may ask for these: every scope but latch:admin.
const DEFAULT_SCOPES = ['openid', 'profile', 'email', 'offline_access'];
// Built-in clients Latch keeps in step itself (src/oidc/first-party-clients.ts).
export const BUILT_IN_CLIENTS = new Set(['latch-api', 'latch-account']);

// http(s), or a private-use scheme for native apps (RFC 8252 section 7.1: reverse DNS, so with a
// dot, e.g. com.example.app:/cb). Nothing else: view-source:, jar: and the like run or embed
// content in the browser. Matching is exact, but a `*` reads like a wildcard that would never match.
const PRIVATE_USE_SCHEME = /^[a-z][a-z0-9+-]*(\.[a-z0-9+-]+)+:$/;
const redirectScheme = (protocol: string) => protocol === 'https:' || protocol === 'http:' || PRIVATE_USE_SCHEME.test(protocol);
const isPrivateUse = (uri: string) => URL.canParse(uri) && PRIVATE_USE_SCHEME.test(new URL(uri).protocol);
// The provider takes a private-use scheme from a native app only, and then http only on these
// hosts, https never (RFC 8252 sections 7.3 and 8.3; oidc-provider's LOOPBACKS).
const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);
const redirectUri = z
  .url()
  .refine((u) => !u.includes('#'), 'must not contain a fragment')
  .refine((u) => !u.includes('*'), 'must not contain * (redirect URIs are matched exactly, without wildcards)')
  .refine((u) => !URL.canParse(u) || redirectScheme(new URL(u).protocol), 'must use https, http or a private-use scheme in reverse-DNS form (com.example.app:/callback)');
const webUrl = z.url({ protocol: /^https?$/ }).refine((u) => !u.includes('#'), 'must not contain a fragment');
// The provider's own scopes: any other in a client's metadata makes the client invalid, and every
// sign-in of that app fails. (An API's scopes come with its resource indicator, not from here.)
const scopeToken = z.enum([...DEFAULT_SCOPES, ADMIN_SCOPE], { error: `one of ${[...DEFAULT_SCOPES, ADMIN_SCOPE].join(', ')} (an API's scopes come with its resource indicator)` });

const ClientFields = z.object({
  name: z.string().trim().min(1).max(100),
  redirectUris: z.array(redirectUri).max(20),
  postLogoutRedirectUris: z.array(redirectUri).max(20),
  grantTypes: z.array(z.enum(GRANT_TYPES)).min(1),
  scopes: z.array(scopeToken).max(50),
  resources: z.array(webUrl).max(20),
  trusted: z.boolean(),
  // An app on the user's device (RFC 8252): its loopback redirect URIs match on any port, and the
  // user is asked to allow it at every sign-in, since another app on the device could claim its URI.
  native: z.boolean(),
});

export const NewClient = ClientFields.extend({
  redirectUris: ClientFields.shape.redirectUris.default([]),
  postLogoutRedirectUris: ClientFields.shape.postLogoutRedirectUris.default([]),
  grantTypes: ClientFields.shape.grantTypes.default(['authorization_code', 'refresh_token']),
  scopes: ClientFields.shape.scopes.default([]),
  resources: ClientFields.shape.resources.default([]),
  trusted: z.boolean().default(false),
  native: z.boolean().default(false),
  public: z.boolean().default(false),
  ownerId: z.string().optional(),
});
export type NewClient = z.input<typeof NewClient>;
export const ClientPatch = ClientFields.partial().strict();
export type ClientPatch = z.input<typeof ClientPatch>;
// Paged as every list is (PageQuery).
export const AppUserQuery = PageQuery;

type Metadata = Record<string, unknown> & {
  grant_types?: string[];
  redirect_uris?: string[];
  post_logout_redirect_uris?: string[];
  scope?: string;
  token_endpoint_auth_method?: string;
};
type ClientRow = { clientId: string; name: string; metadata: unknown; trusted: boolean; ownerId: string | null; resources: string; createdAt: Date; updatedAt: Date };

export type ClientSummary = ReturnType<typeof toSummary>;

export function toSummary(r: ClientRow) {
  const m = r.metadata as Metadata;
  return {
    clientId: r.clientId,
    name: r.name,
    public: m.token_endpoint_auth_method === 'none',
    native: m.application_type === 'native',
    trusted: r.trusted,
    ownerId: r.ownerId,
    grantTypes: m.grant_types ?? [],
    redirectUris: m.redirect_uris ?? [],
    postLogoutRedirectUris: m.post_logout_redirect_uris ?? [],
    scopes: m.scope ? m.scope.split(' ') : [],
    resources: r.resources.split(' ').filter(Boolean),
    createdAt: r.createdAt,
    updatedAt: r.updatedAt,
  };
}

/** A native app: marked so, or with a private-use redirect URI (the provider refuses one from a web app). */
const isNative = (c: { native?: boolean; redirectUris: string[]; postLogoutRedirectUris: string[] }) => Boolean(c.native) || [...c.redirectUris, ...c.postLogoutRedirectUris].some(isPrivateUse);

/** Checks that only make sense on the whole client, after a create or a patch. */
function assertConsistent(c: { public: boolean; native?: boolean; grantTypes: string[]; redirectUris: string[]; postLogoutRedirectUris: string[] }) {
  const problems = [];
  if (isNative(c)) {
    for (const path of ['redirectUris', 'postLogoutRedirectUris'] as const) {
      for (const uri of c[path]) {
        const { protocol, hostname } = new URL(uri);
        if (protocol === 'http:' && !LOOPBACK_HOSTS.has(hostname)) problems.push({ path, message: `${uri}: a native app (marked so, or with a private-use scheme) may use http on a loopback address only` });
        if (protocol === 'https:' && LOOPBACK_HOSTS.has(hostname)) problems.push({ path, message: `${uri}: a native app (marked so, or with a private-use scheme) uses http, not https, on a loopback address` });
      }
    }
  }
  if (c.grantTypes.includes('authorization_code') && c.redirectUris.length === 0) {
    problems.push({ path: 'redirectUris', message: 'authorization_code needs at least one redirect URI' });
  }
  if (c.public && c.grantTypes.includes('client_credentials')) {
    problems.push({ path: 'grantTypes', message: 'a public client cannot use client_credentials' });
  }
  if (problems.length) throw new AppError('VALIDATION_FAILED', problems[0]!.message, problems);
}

type MetadataInput = { name: string; native?: boolean; redirectUris: string[]; postLogoutRedirectUris: string[]; grantTypes: string[]; scopes: string[]; public: boolean };

function toMetadata(clientId: string, c: MetadataInput, secretHash?: string) {
  return {
    client_id: clientId,
    client_name: c.name,
    ...(isNative(c) ? { application_type: 'native' } : {}),
    redirect_uris: c.redirectUris,
    post_logout_redirect_uris: c.postLogoutRedirectUris,
    grant_types: c.grantTypes,
    response_types: c.grantTypes.includes('authorization_code') ? ['code'] : [],
    token_endpoint_auth_method: c.public ? 'none' : 'client_secret_basic',
    ...(secretHash ? { client_secret: secretHash } : {}),
    scope: (c.scopes.length ? c.scopes : DEFAULT_SCOPES).join(' '),
  };
}

/** The database's unique (owner, name) index decides races the pre-check cannot. */
async function uniqueName<T>(write: () => Promise<T>): Promise<T> {
  try {
    return await write();
  } catch (err) {
    if (isUniqueViolation(err)) throw new AppError('APP_NAME_TAKEN');
    throw err;
  }
}

/** `onChange` hears of every client write, so caches of client metadata can drop the entry. */
export function createClientsService(prisma: Db, onChange: (clientId: string) => void = () => {}) {
  async function findRow(clientId: string) {
    const row = await prisma.client.findUnique({ where: { clientId } });
    if (!row) throw new AppError('CLIENT_NOT_FOUND');
    return row;
  }

  async function assertNameFree(ownerId: string | null | undefined, name: string, except?: string) {
    if (!ownerId) return;
    const clash = await prisma.client.findFirst({ where: { ownerId, name, ...(except ? { NOT: { clientId: except } } : {}) }, select: { clientId: true } });
    if (clash) throw new AppError('APP_NAME_TAKEN');
  }

  return {
    /** Registers a client; the secret (confidential clients) is returned here once and stored hashed. */
    async create(input: NewClient): Promise<{ clientId: string; clientSecret?: string; client: ClientSummary }> {
      const c = NewClient.parse(input);
      assertConsistent(c);
      await assertNameFree(c.ownerId, c.name);
      const clientId = randomBytes(16).toString('base64url');
      const clientSecret = c.public ? undefined : generateClientSecret();
      const row = await uniqueName(() => prisma.client.create({
        data: {
          clientId,
          name: c.name,
          metadata: toMetadata(clientId, c, clientSecret && hashClientSecret(clientSecret)),
          trusted: c.trusted,
          ownerId: c.ownerId ?? null,
          resources: c.resources.join(' '),
        },
      }));
      return { clientId, ...(clientSecret ? { clientSecret } : {}), client: toSummary(row) };
    },

    async find(clientId: string): Promise<ClientSummary> {
      return toSummary(await findRow(clientId));
    },

    async list(filter: { ownerId?: string } = {}): Promise<ClientSummary[]> {
      const rows = await prisma.client.findMany({ where: { ownerId: filter.ownerId }, orderBy: [{ createdAt: 'asc' }, { clientId: 'asc' }] });
      return rows.map(toSummary);
    },

    async update(clientId: string, patch: ClientPatch): Promise<ClientSummary> {
      const changes = ClientPatch.parse(patch);
      const row = await findRow(clientId);
      const current = toSummary(row);
      const next = { ...current, ...changes };
      assertConsistent(next);
      if (changes.name) await assertNameFree(row.ownerId, changes.name, clientId);
      const secret = (row.metadata as Metadata).client_secret as string | undefined;
      const updated = await uniqueName(() => prisma.client.update({
        where: { clientId },
        data: { name: next.name, trusted: next.trusted, resources: next.resources.join(' '), metadata: toMetadata(clientId, next, secret) },
      }));
      onChange(clientId);
      return toSummary(updated);
    },

    /** A new secret, returned once; the old one stops working at once. */
    async rotateSecret(clientId: string): Promise<string> {
      const row = await findRow(clientId);
      const metadata = row.metadata as Metadata;
      if (metadata.token_endpoint_auth_method === 'none') throw new AppError('VALIDATION_FAILED', 'A public client has no secret.');
      const clientSecret = generateClientSecret();
      await prisma.client.update({ where: { clientId }, data: { metadata: { ...metadata, client_secret: hashClientSecret(clientSecret) } } });
      onChange(clientId);
      return clientSecret;
    },

    /** Deletes the client with every grant, token and code it holds, and its API keys. */
    async delete(clientId: string) {
      await findRow(clientId);
      const ownConnections = (await prisma.connection.findMany({ where: { ownerClientId: clientId }, select: { id: true } })).map((c) => c.id);
      await prisma.$transaction([
        prisma.oidcPayload.deleteMany({ where: { clientId } }),
        prisma.apiKey.deleteMany({ where: { clientId } }),
        // The app's own upstream connections go with it (their users keep their local accounts).
        prisma.clientConnection.deleteMany({ where: { clientId } }),
        prisma.federatedIdentity.deleteMany({ where: { connectionId: { in: ownConnections } } }),
        prisma.clientConnection.deleteMany({ where: { connectionId: { in: ownConnections } } }),
        prisma.connection.deleteMany({ where: { ownerClientId: clientId } }),
        prisma.client.delete({ where: { clientId } }),
      ]);
      onChange(clientId);
    },

    /** Revokes every grant and token of the client (users must consent again); the client stays. */
    revokeAll: (clientId: string) => prisma.oidcPayload.deleteMany({ where: { clientId } }),

    /**
     * Users who have granted the client access, with their last sign-in: a page, by email. With
     * `asConsented`, as the app's owner and keys may see them: each user's email only if a live
     * grant of theirs to the app holds the `email` scope, and name and username only with `profile`,
     * what they agreed to share with it (an admin sees everything, as on /api/users); oldest account
     * first then, as the order of hidden addresses would tell something of them.
     */
    async users(clientId: string, query: z.input<typeof AppUserQuery> = {}, options: { asConsented: boolean }) {
      const { page, pageSize } = AppUserQuery.parse(query);
      const now = new Date();
      const from = sql`
        FROM users u
        WHERE EXISTS (SELECT 1 FROM oidc_payloads g WHERE g.model = 'Grant' AND g.client_id = ${clientId} AND g.account_id = u.id
          AND (g.expires_at IS NULL OR g.expires_at > ${now}))`;
      const order = options.asConsented ? sql`u.created_at, u.id` : sql`u.email, u.id`;
      const { ids, total } = await pageOfIds(prisma, { id: sql`u.id`, from, order, page, pageSize });
      if (!ids.length) return { items: [], total, page, pageSize };
      const [users, grants] = await Promise.all([
        prisma.user.findMany({ where: { id: { in: ids } }, select: { id: true, email: true, name: true, username: true, lastLoginAt: true }, orderBy: options.asConsented ? [{ createdAt: 'asc' }, { id: 'asc' }] : [{ email: 'asc' }, { id: 'asc' }] }),
        options.asConsented
          ? prisma.oidcPayload.findMany({ where: { model: 'Grant', clientId, accountId: { in: ids }, OR: [{ expiresAt: null }, { expiresAt: { gt: now } }] }, select: { accountId: true, payload: true } })
          : [],
      ]);
      if (!options.asConsented) return { items: users, total, page, pageSize };
      const granted = new Map<string, Set<string>>();
      for (const g of grants) {
        const scope = (g.payload as { openid?: { scope?: unknown } } | null)?.openid?.scope;
        const set = granted.get(g.accountId!) ?? new Set<string>();
        for (const s of typeof scope === 'string' ? scope.split(' ') : []) set.add(s);
        granted.set(g.accountId!, set);
      }
      const items = users.map((u) => {
        const scopes = granted.get(u.id);
        const profile = Boolean(scopes?.has('profile'));
        return { id: u.id, email: scopes?.has('email') ? u.email : null, name: profile ? u.name : null, username: profile ? u.username : null, lastLoginAt: u.lastLoginAt };
      });
      return { items, total, page, pageSize };
    },
  };
}

export type ClientsService = ReturnType<typeof createClientsService>;
