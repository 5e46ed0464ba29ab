import { z } from 'zod';
import type { Db } from '../db/prisma.js';
import type { Connection } from '../generated/sqlite/client.js';
import { isUniqueViolation } from '../db/errors.js';
import { AppError } from '../http/problem.js';
import { SecretKeyMissingError, type SecretBox } from './secret-box.js';

export type { Connection };

export const CONNECTION_KINDS = ['github', 'google', 'oidc', 'oauth2'] as const;
export type ConnectionKind = (typeof CONNECTION_KINDS)[number];

// Where each kind talks to when the connection does not say otherwise. GitHub Enterprise Server
// sets its own URLs (https://<host>/login/oauth/..., https://<host>/api/v3/user).
const PRESETS: Record<ConnectionKind, { issuer?: string; authorizationUrl?: string; tokenUrl?: string; userinfoUrl?: string; scopes: string[] }> = {
  github: {
    authorizationUrl: 'https://github.com/login/oauth/authorize',
    tokenUrl: 'https://github.com/login/oauth/access_token',
    userinfoUrl: 'https://api.github.com/user',
    scopes: ['read:user', 'user:email'],
  },
  google: { issuer: 'https://accounts.google.com', scopes: ['openid', 'email', 'profile'] },
  oidc: { scopes: ['openid', 'email', 'profile'] },
  oauth2: { scopes: [] },
};

export const CLAIM_FIELDS = ['subject', 'email', 'emailVerified', 'name', 'givenName', 'familyName', 'picture', 'username'] as const;
export type ClaimField = (typeof CLAIM_FIELDS)[number];
export type ClaimMapping = Partial<Record<ClaimField, string>>;

const OIDC_CLAIMS: Record<ClaimField, string> = {
  subject: 'sub',
  email: 'email',
  emailVerified: 'email_verified',
  name: 'name',
  givenName: 'given_name',
  familyName: 'family_name',
  picture: 'picture',
  username: 'preferred_username',
};
const DEFAULT_CLAIMS: Record<ConnectionKind, Record<ClaimField, string>> = {
  github: { ...OIDC_CLAIMS, subject: 'id', picture: 'avatar_url', username: 'login', emailVerified: 'email_verified' },
  google: OIDC_CLAIMS,
  oidc: OIDC_CLAIMS,
  oauth2: OIDC_CLAIMS,
};

const LOOPBACK = new Set(['localhost', '127.0.0.1', '[::1]']);
/**
 * Whether Latch may call an upstream endpoint: https, or http on loopback only (local development
 * and tests). Checked when a connection is saved, and on the endpoints its discovery names.
 */
export const mayCallUpstream = (u: string) => u.startsWith('https://') || (URL.canParse(u) && new URL(u).protocol === 'http:' && LOOPBACK.has(new URL(u).hostname));
const upstreamUrl = z
  .url({ protocol: /^https?$/ })
  .max(2000)
  .refine((u) => !u.includes('#'), 'must not contain a fragment')
  .refine(mayCallUpstream, 'must use https (http is allowed on localhost only)');
const scopeToken = z.string().regex(/^[\x21\x23-\x5b\x5d-\x7e]+$/, 'invalid scope');
const claimName = z.string().trim().min(1).max(100).regex(/^[\w.:-]+$/, 'a claim name, or a dotted path to one');

/** Where a connection's users are asked who they are: changing any of them (in effect) moves the connection to another provider. */
const ENDPOINTS = ['issuer', 'authorizationUrl', 'tokenUrl', 'userinfoUrl'] as const;

type KindFields = { kind: string; issuer?: string | null; authorizationUrl?: string | null; tokenUrl?: string | null; userinfoUrl?: string | null; clientSecret?: string | null };

/** What each kind needs besides the common fields. */
function kindProblems(c: KindFields): { path: string[]; message: string }[] {
  const problems: { path: string[]; message: string }[] = [];
  if (c.kind === 'oidc' && !c.issuer) problems.push({ path: ['issuer'], message: 'required for an oidc connection' });
  if (c.kind === 'oauth2')
    for (const field of ['authorizationUrl', 'tokenUrl', 'userinfoUrl'] as const)
      if (!c[field]) problems.push({ path: [field], message: 'required for an oauth2 connection' });
  if ((c.kind === 'github' || c.kind === 'google') && !c.clientSecret) problems.push({ path: ['clientSecret'], message: `required for ${c.kind}` });
  if (c.kind === 'google' && c.issuer) problems.push({ path: ['issuer'], message: 'google connections use https://accounts.google.com' });
  return problems;
}

const Fields = z.object({
  name: z.string().trim().min(1).max(60).meta({ description: 'Shown on the button: "Continue with <name>"' }),
  clientId: z.string().trim().min(1).max(500),
  clientSecret: z.string().min(1).max(4000).meta({ description: 'Stored encrypted; never returned' }),
  issuer: upstreamUrl.meta({ description: 'oidc: the issuer, whose discovery document is read' }),
  authorizationUrl: upstreamUrl,
  tokenUrl: upstreamUrl,
  userinfoUrl: upstreamUrl,
  scopes: z.array(scopeToken).max(30),
  claimMapping: z.object(Object.fromEntries(CLAIM_FIELDS.map((f) => [f, claimName.optional()])) as Record<ClaimField, z.ZodOptional<typeof claimName>>).strict(),
  enabled: z.boolean(),
});

export const ConnectionInput = Fields.partial()
  .extend({
    kind: z.enum(CONNECTION_KINDS),
    slug: z
      .string()
      .regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'lower-case letters, digits and dashes')
      .meta({ description: 'Names the callback URL: /callback/<slug>' }),
    name: Fields.shape.name,
    clientId: Fields.shape.clientId,
  })
  .strict()
  .superRefine((c, ctx) => {
    for (const issue of kindProblems(c)) ctx.addIssue({ code: 'custom', ...issue });
  });
export type ConnectionInput = z.input<typeof ConnectionInput>;

// Kind and slug stay: the slug is the redirect URI registered upstream. null clears a field.
export const ConnectionPatch = z
  .object({
    ...Fields.shape,
    issuer: Fields.shape.issuer.nullable(),
    authorizationUrl: Fields.shape.authorizationUrl.nullable(),
    tokenUrl: Fields.shape.tokenUrl.nullable(),
    userinfoUrl: Fields.shape.userinfoUrl.nullable(),
    clientSecret: Fields.shape.clientSecret.nullable(),
  })
  .partial()
  .strict();
export type ConnectionPatch = z.input<typeof ConnectionPatch>;

/** The scopes a connection of this kind asks for when it names none. */
export const defaultScopes = (kind: ConnectionKind) => [...PRESETS[kind].scopes];

/** The endpoints and scopes a connection really uses: its own values over its kind's. */
export function effectiveSettings(c: Connection) {
  const preset = PRESETS[c.kind as ConnectionKind];
  return {
    issuer: c.issuer ?? preset.issuer ?? null,
    authorizationUrl: c.authorizationUrl ?? preset.authorizationUrl ?? null,
    tokenUrl: c.tokenUrl ?? preset.tokenUrl ?? null,
    userinfoUrl: c.userinfoUrl ?? preset.userinfoUrl ?? null,
    scopes: c.scopes ? c.scopes.split(' ') : [],
    claims: { ...DEFAULT_CLAIMS[c.kind as ConnectionKind], ...((c.claimMapping ?? {}) as ClaimMapping) },
  };
}

export function callbackUrl(publicUrl: string, slug: string) {
  return `${publicUrl}/callback/${slug}`;
}

export function toConnectionDto(c: Connection, publicUrl: string) {
  const e = effectiveSettings(c);
  return {
    id: c.id,
    slug: c.slug,
    kind: c.kind as ConnectionKind,
    name: c.name,
    clientId: c.clientId,
    hasClientSecret: c.clientSecret !== null,
    issuer: e.issuer,
    authorizationUrl: e.authorizationUrl,
    tokenUrl: e.tokenUrl,
    userinfoUrl: e.userinfoUrl,
    scopes: e.scopes,
    claimMapping: (c.claimMapping ?? {}) as ClaimMapping,
    appId: c.ownerClientId,
    enabled: c.enabled,
    callbackUrl: callbackUrl(publicUrl, c.slug),
    createdAt: c.createdAt.toISOString(),
    updatedAt: c.updatedAt.toISOString(),
  };
}
export type ConnectionDto = ReturnType<typeof toConnectionDto>;

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
      const preset = PRESETS[data.kind];
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
            scopes: (data.scopes ?? preset.scopes).join(' '),
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
      await prisma.clientConnection.upsert({ where: { clientId_connectionId: { clientId, connectionId } }, create: { clientId, connectionId }, update: {} });
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
