import { z } from 'zod';
import type { Connection } from '../generated/sqlite/client.js';

// What a connection to an upstream login provider is made of: its kinds, what each kind talks to
// and reads by default, the input a client may send, and the shape it is shown in.

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
export const ENDPOINTS = ['issuer', 'authorizationUrl', 'tokenUrl', 'userinfoUrl'] as const;

type KindFields = { kind: string; issuer?: string | null; authorizationUrl?: string | null; tokenUrl?: string | null; userinfoUrl?: string | null; clientSecret?: string | null };

/** What each kind needs besides the common fields. */
export function kindProblems(c: KindFields): { path: string[]; message: string }[] {
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
