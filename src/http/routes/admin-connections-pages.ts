import type Router from '@koa/router';
import type { Context, Middleware } from 'koa';
import { ZodError, type z } from 'zod';
import { actorId } from '../../auth/principal.js';
import {
  CONNECTION_KINDS,
  ConnectionInput,
  ConnectionPatch,
  callbackUrl,
  defaultScopes,
  toConnectionDto,
  type ConnectionKind,
} from '../../federation/connection-settings.js';
import type { Connection } from '../../federation/connections.service.js';
import { connectionChanges } from '../../federation/connection-changes.js';
import { AppError } from '../problem.js';
import { requestMeta } from '../request-meta.js';
import { adminOf, assertConfirmed, noticeOf, withMessages, withNotice, type AdminDeps, type Kit } from './admin-page-kit.js';
import { field, type FormProblem } from './page-forms.js';

const KIND_LABELS: Record<ConnectionKind, string> = {
  github: 'GitHub (or GitHub Enterprise)',
  google: 'Google',
  oidc: 'OpenID Connect (any issuer with discovery)',
  oauth2: 'OAuth 2.0 (your own endpoints)',
};

// An emptied scopes field on the edit form means "back to the kind's default".
const DEFAULT_SCOPES = Object.fromEntries(CONNECTION_KINDS.map((k) => [k, defaultScopes(k)])) as Record<ConnectionKind, string[]>;

const URL_FIELDS = ['issuer', 'authorizationUrl', 'tokenUrl', 'userinfoUrl'] as const;
type UrlField = (typeof URL_FIELDS)[number];
const URL_LABELS: Record<UrlField, string> = { issuer: 'Issuer URL', authorizationUrl: 'Authorization URL', tokenUrl: 'Token URL', userinfoUrl: 'Userinfo URL' };

/** The URL fields each kind uses (the edit form shows only these; kind and slug never change). */
const KIND_URLS: Record<ConnectionKind, UrlField[]> = {
  github: ['authorizationUrl', 'tokenUrl', 'userinfoUrl'],
  google: [],
  oidc: ['issuer'],
  oauth2: ['authorizationUrl', 'tokenUrl', 'userinfoUrl'],
};

type Issue = z.core.$ZodIssue;
const urlMessage = (key: UrlField) => (issue: Issue, value: unknown) => {
  const label = URL_LABELS[key];
  if (typeof value !== 'string' || value === '') return `Enter the ${label.charAt(0).toLowerCase()}${label.slice(1)}: it is ${issue.message}.`;
  if (issue.code !== 'custom') return `${label}: “${value}” is not a valid URL; use an absolute https:// URL.`;
  // Custom issues either judge the URL ("must use https ...") or the field ("google connections use ...").
  return /^(must|is) /.test(issue.message) ? `${label}: “${value}” ${issue.message}.` : `${label}: ${issue.message}.`;
};

const MESSAGES = {
  kind: 'Choose a kind of connection from the list.',
  slug: 'Slug: use 1 to 63 lower-case letters, digits and dashes, starting with a letter or digit.',
  name: 'Enter a button label of 1 to 60 characters.',
  clientId: 'Enter the client ID the provider gave you (at most 500 characters).',
  clientSecret: (issue: Issue) => (issue.code === 'custom' ? `Enter the client secret: it is ${issue.message}.` : 'The client secret is too long (at most 4000 characters).'),
  scopes: (_issue: Issue, value: unknown) => (typeof value === 'string' ? `“${value}” is not a valid scope: use letters, digits and punctuation without quotes or backslashes.` : 'Use at most 30 scopes.'),
  ...Object.fromEntries(URL_FIELDS.map((k) => [k, urlMessage(k)])),
};

const LIST_NOTICES = { connection_deleted: 'The connection is deleted. Users who signed in through it keep their accounts.' };
const CONNECTION_NOTICES = { created: 'The connection is added.', saved: 'The changes are saved.', unchanged: 'Nothing changed.' };

type Values = { kind: string; slug: string; name: string; clientId: string; scopes: string; enabled: boolean } & Record<UrlField, string>;

const EMPTY: Values = { kind: 'github', slug: '', name: '', clientId: '', issuer: '', authorizationUrl: '', tokenUrl: '', userinfoUrl: '', scopes: '', enabled: true };

// The client secret is read where it is used and never kept in Values: forms never echo it.
const formValues = (ctx: Context): Values => ({
  kind: field(ctx, 'kind'),
  slug: field(ctx, 'slug').trim(),
  name: field(ctx, 'name').trim(),
  clientId: field(ctx, 'clientId').trim(),
  issuer: field(ctx, 'issuer').trim(),
  authorizationUrl: field(ctx, 'authorizationUrl').trim(),
  tokenUrl: field(ctx, 'tokenUrl').trim(),
  userinfoUrl: field(ctx, 'userinfoUrl').trim(),
  scopes: field(ctx, 'scopes').trim(),
  enabled: field(ctx, 'enabled') !== '',
});

const storedValues = (c: Connection): Values => ({
  kind: c.kind,
  slug: c.slug,
  name: c.name,
  clientId: c.clientId,
  issuer: c.issuer ?? '',
  authorizationUrl: c.authorizationUrl ?? '',
  tokenUrl: c.tokenUrl ?? '',
  userinfoUrl: c.userinfoUrl ?? '',
  scopes: c.scopes,
  enabled: c.enabled,
});

const scopeList = (s: string) => s.split(/\s+/).filter(Boolean);

/**
 * The service's URL check throws (a 500) on text that is not a URL at all, so such values are
 * refused here, together with whatever else `schema` finds in the rest of the input.
 */
function checkUrls(schema: z.ZodType, input: Record<string, unknown>) {
  const bad = URL_FIELDS.filter((k) => typeof input[k] === 'string' && !URL.canParse(input[k]));
  if (!bad.length) return;
  const rest = schema.safeParse({ ...input, ...Object.fromEntries(bad.map((k) => [k, undefined])) });
  const issues: Issue[] = bad.map((k) => ({ code: 'custom', path: [k], message: 'is not a valid URL; use an absolute https:// URL', input: input[k] }));
  throw new ZodError([...issues, ...(rest.error?.issues ?? [])]);
}

/** Runs a service call, turning its refusals into field messages for the form. */
async function saving<T>(run: () => Promise<T>, schema: z.ZodType, input: Record<string, unknown>): Promise<T> {
  try {
    return await withMessages(async () => {
      checkUrls(schema, input);
      try {
        return await run();
      } catch (err) {
        // The kind's requirements, checked by update after the change: worded like the rest.
        if (err instanceof AppError && err.code === 'VALIDATION_FAILED' && err.errors && !err.detail)
          throw new ZodError(err.errors.map((e) => ({ code: 'custom', path: e.path.split('.'), message: e.message, input: undefined })));
        throw err;
      }
    }, MESSAGES, input);
  } catch (err) {
    if (err instanceof AppError && err.code === 'CONNECTION_KEY_MISSING') throw new AppError(err.code, undefined, [{ path: 'clientSecret', message: err.title }]);
    if (err instanceof AppError && err.code === 'CONNECTION_SLUG_TAKEN') {
      const message = `A connection with the slug “${String(input.slug)}” already exists: choose another.`;
      throw new AppError(err.code, message, [{ path: 'slug', message }]);
    }
    throw err;
  }
}

/** Upstream login providers (global ones, and apps' own): admins only. */
export function adminConnectionPages(router: Router, deps: AdminDeps, kit: Kit, adminOnly: Middleware) {
  const { connections, audit, prisma } = deps;
  const publicUrl = deps.config.http.publicUrl;
  const connectionPath = (id: string) => `/admin/connections/${encodeURIComponent(id)}`;

  async function appNames(ids: (string | null)[]) {
    const wanted = [...new Set(ids.filter((id): id is string => Boolean(id)))];
    const rows = wanted.length ? await prisma.client.findMany({ where: { clientId: { in: wanted } }, select: { clientId: true, name: true } }) : [];
    return Object.fromEntries(rows.map((r) => [r.clientId, r.name]));
  }

  async function renderList(ctx: Context, extra: { problem?: FormProblem; values?: Values } = {}) {
    const [global, owned] = await Promise.all([
      connections.list({ ownerClientId: null }),
      prisma.connection.findMany({ where: { ownerClientId: { not: null } }, orderBy: [{ createdAt: 'asc' }, { id: 'asc' }] }),
    ]);
    await kit.page(ctx, 'connections', 'connections', {
      title: 'Connections',
      connections: global.map((c) => toConnectionDto(c, publicUrl)),
      owned: owned.map((c) => toConnectionDto(c, publicUrl)),
      apps: await appNames(owned.map((c) => c.ownerClientId)),
      kinds: KIND_LABELS,
      callbackBase: callbackUrl(publicUrl, ''),
      urlLabels: URL_LABELS,
      defaultScopes: DEFAULT_SCOPES,
      values: extra.values ?? EMPTY,
      notice: noticeOf(ctx, LIST_NOTICES),
      error: extra.problem?.message,
      fields: extra.problem?.fields,
    }, extra.problem?.status);
  }

  async function renderConnection(ctx: Context, id: string, extra: { problem?: FormProblem; values?: Values } = {}) {
    const c = await connections.find(id);
    const [apps, offeredBy] = await Promise.all([
      appNames([c.ownerClientId]),
      prisma.clientConnection.findMany({ where: { connectionId: c.id }, select: { clientId: true } }),
    ]);
    const offeredNames = await appNames(offeredBy.map((o) => o.clientId));
    await kit.page(ctx, 'connection', 'connections', {
      title: c.name,
      connection: toConnectionDto(c, publicUrl),
      kindLabel: KIND_LABELS[c.kind as ConnectionKind] ?? c.kind,
      owner: c.ownerClientId ? { clientId: c.ownerClientId, name: apps[c.ownerClientId] } : undefined,
      offeredBy: offeredBy.map((o) => ({ clientId: o.clientId, name: offeredNames[o.clientId] ?? o.clientId })),
      urlFields: KIND_URLS[c.kind as ConnectionKind] ?? [],
      urlLabels: URL_LABELS,
      defaultScopes: DEFAULT_SCOPES,
      values: extra.values ?? storedValues(c),
      notice: noticeOf(ctx, CONNECTION_NOTICES),
      error: extra.problem?.message,
      fields: extra.problem?.fields,
    }, extra.problem?.status);
  }

  /** Audit detail naming the connection, and its app when it has one. */
  const about = (c: Connection) => ({ connectionId: c.id, slug: c.slug, ...(c.ownerClientId ? { clientId: c.ownerClientId } : {}) });

  router.get('/connections', adminOnly, (ctx) => renderList(ctx));

  router.post('/connections', adminOnly, async (ctx) => {
    const values = formValues(ctx);
    const secret = field(ctx, 'clientSecret');
    await kit.act(
      ctx,
      async () => {
        const scopes = scopeList(values.scopes);
        const input = {
          kind: values.kind as ConnectionKind,
          slug: values.slug,
          name: values.name,
          clientId: values.clientId,
          clientSecret: secret || undefined,
          ...Object.fromEntries(URL_FIELDS.map((k) => [k, values[k] || undefined])),
          scopes: scopes.length ? scopes : undefined,
          enabled: values.enabled,
        } satisfies ConnectionInput;
        const created = await saving(() => connections.create(input), ConnectionInput, input);
        await audit.record('admin.connection_created', { actorId: actorId(adminOf(ctx).principal), detail: about(created), ...requestMeta(ctx) });
        return withNotice(connectionPath(created.id), 'created');
      },
      (problem) => renderList(ctx, { problem, values }),
    );
  });

  router.get('/connections/:id', adminOnly, (ctx) => renderConnection(ctx, ctx.params.id!));

  router.post('/connections/:id', adminOnly, async (ctx) => {
    const id = ctx.params.id!;
    const values = formValues(ctx);
    const secret = field(ctx, 'clientSecret');
    await kit.act(
      ctx,
      async () => {
        const current = await connections.find(id);
        const kind = current.kind as ConnectionKind;
        // Only what changed is sent: the audit entry names those fields, and nothing else is re-checked.
        const patch: ConnectionPatch = {};
        if (values.name !== current.name) patch.name = values.name;
        if (values.clientId !== current.clientId) patch.clientId = values.clientId;
        if (secret) patch.clientSecret = secret;
        for (const k of KIND_URLS[kind] ?? []) if ((values[k] || null) !== current[k]) patch[k] = values[k] || null;
        const scopes = values.scopes ? scopeList(values.scopes) : (DEFAULT_SCOPES[kind] ?? []);
        if (scopes.join(' ') !== current.scopes) patch.scopes = scopes;
        if (values.enabled !== current.enabled) patch.enabled = values.enabled;
        if (!Object.keys(patch).length) return withNotice(connectionPath(id), 'unchanged');
        const updated = await saving(() => connections.update(id, patch), ConnectionPatch, patch);
        const detail = { ...about(updated), fields: Object.keys(patch), changes: connectionChanges(current, updated) };
        await audit.record('admin.connection_updated', { actorId: actorId(adminOf(ctx).principal), detail, ...requestMeta(ctx) });
        return withNotice(connectionPath(id), 'saved');
      },
      (problem) => renderConnection(ctx, id, { problem, values }),
    );
  });

  router.post('/connections/:id/delete', adminOnly, async (ctx) => {
    const id = ctx.params.id!;
    await kit.act(
      ctx,
      async () => {
        const c = await connections.find(id);
        assertConfirmed(ctx, 'confirmDelete', 'this connection is to be deleted');
        await connections.delete(c.id);
        await audit.record('admin.connection_deleted', { actorId: actorId(adminOf(ctx).principal), detail: about(c), ...requestMeta(ctx) });
        return withNotice('/admin/connections', 'connection_deleted');
      },
      (problem) => renderConnection(ctx, id, { problem }),
    );
  });
}
