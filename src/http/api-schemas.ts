import { z } from 'zod';

// Response shapes for the OpenAPI document. Requests are validated by the schemas next to routes.
const date = z.iso.datetime();

export const UserOut = z
  .object({
    id: z.string(),
    email: z.string(),
    emailVerified: z.boolean(),
    username: z.string().nullable(),
    name: z.string().nullable(),
    givenName: z.string().nullable(),
    familyName: z.string().nullable(),
    active: z.boolean(),
    isStaff: z.boolean(),
    isAdmin: z.boolean(),
    isDeveloper: z.boolean(),
    lastLoginAt: date.nullable(),
    createdAt: date,
    updatedAt: date,
  })
  .meta({ id: 'User' });

/** The signed-in user's own account, with the address it moves to once confirmed (null when none is waiting). */
export const MeOut = UserOut.extend({ pendingEmail: z.string().nullable() }).meta({ id: 'Me' });

export const TokensOut = z
  .object({
    access_token: z.string(),
    token_type: z.literal('Bearer'),
    expires_in: z.number().int(),
    refresh_token: z.string().optional(),
    id_token: z.string().optional(),
    scope: z.string(),
  })
  .meta({ id: 'Tokens' });

export const MessageOut = z.object({ message: z.string() }).meta({ id: 'Message' });

export const page = <T extends z.ZodType>(item: T, id: string) =>
  z.object({ items: z.array(item), total: z.number().int(), page: z.number().int(), pageSize: z.number().int() }).meta({ id });

export const ActivityOut = page(z.object({ event: z.string(), at: date, ip: z.string().nullable(), userAgent: z.string().nullable() }), 'ActivityPage');

export const AppOut = z
  .object({
    clientId: z.string(),
    name: z.string(),
    public: z.boolean(),
    native: z.boolean().meta({ description: 'An app on the user\'s device (RFC 8252): loopback redirect URIs match on any port; the user allows it at every sign-in' }),
    trusted: z.boolean(),
    ownerId: z.string().nullable(),
    grantTypes: z.array(z.string()),
    redirectUris: z.array(z.string()),
    postLogoutRedirectUris: z.array(z.string()),
    scopes: z.array(z.string()),
    resources: z.array(z.string()),
    createdAt: date,
    updatedAt: date,
  })
  .meta({ id: 'App' });

export const ConnectionOut = z
  .object({
    id: z.string(),
    slug: z.string(),
    kind: z.enum(['github', 'google', 'oidc', 'oauth2']),
    name: z.string(),
    clientId: z.string(),
    hasClientSecret: z.boolean(),
    issuer: z.string().nullable(),
    authorizationUrl: z.string().nullable(),
    tokenUrl: z.string().nullable(),
    userinfoUrl: z.string().nullable(),
    scopes: z.array(z.string()),
    claimMapping: z.record(z.string(), z.string()),
    appId: z.string().nullable().meta({ description: 'The app owning the connection; null for a global one' }),
    enabled: z.boolean(),
    callbackUrl: z.string().meta({ description: 'The redirect URI to register at the upstream provider' }),
    createdAt: date,
    updatedAt: date,
  })
  .meta({ id: 'Connection' });

export const ApiKeyOut = z
  .object({ id: z.string(), prefix: z.string(), active: z.boolean(), createdAt: date, lastUsedAt: date.nullable() })
  .meta({ id: 'ApiKey' });

export const AuditEventOut = z
  .object({
    id: z.string(),
    event: z.string(),
    userId: z.string().nullable(),
    actorId: z.string().nullable(),
    ip: z.string().nullable(),
    userAgent: z.string().nullable(),
    detail: z.unknown(),
    createdAt: date,
  })
  .meta({ id: 'AuditEvent' });

export const IdentitiesOut = z
  .object({
    items: z.array(
      z.object({
        id: z.string(),
        connection: z.string().meta({ description: 'The provider’s display name' }),
        kind: z.string().nullable().meta({ description: 'The provider’s kind (github, google, oidc, oauth2); null once the connection is deleted' }),
        email: z.string().nullable().meta({ description: 'The email the provider gave' }),
        createdAt: date,
        lastLoginAt: date.nullable(),
      }),
    ),
  })
  .meta({ id: 'LinkedAccounts' });
