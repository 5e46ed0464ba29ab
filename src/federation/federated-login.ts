import type { Context } from 'koa';
import type { Audit } from '../audit/audit.service.js';
import { AppError } from '../http/problem.js';
import { requestMeta } from '../http/request-meta.js';
import type { PreauthenticatedLogin } from '../oidc/preauthenticated-login.js';
import { callbackUrl } from './connection-settings.js';
import type { Connection, ConnectionsService } from './connections.service.js';
import type { FederatedAccounts, RefusalReason } from './federated-accounts.js';
import { UpstreamError, setupFault, upstreamsFault, type PendingAuthorization, type Upstream, type UpstreamFailure } from './upstream.js';

// Between leaving for the upstream and its callback: state, nonce and PKCE verifier of each
// pending sign-in of the browser, the latest MAX_PENDING, in one signed, HttpOnly cookie; each
// entry is used once. Two sign-ins started in one browser (two tabs) each find their own, a callback
// with a state of none of them (a stale tab, or one an attacker sends the browser to) leaves them
// alone, and sign-ins started and left do not pile up (a cookie each made the request headers of a
// browser that pressed the button 30 times too large to be read). Its path is `/`, as the start of a
// sign-in reads it too.
const STATE_COOKIE = 'latch.upstreams';
const MAX_PENDING = 3;
const STATE_SECONDS = 10 * 60;
// A local account matched the upstream's email: what to link once the user proves that account.
const LINK_COOKIE = 'latch.link';
const LINK_SECONDS = 15 * 60;

type PendingSignIn = PendingAuthorization & { connectionId: string; interactionUid: string; exp: number };
type StateCookie = { pending: PendingSignIn[]; exp: number };
export type PendingLink = { connectionId: string; subject: string; email: string; userId: string; emailVerified: boolean; interactionUid: string; exp: number };

export type CallbackOutcome =
  | { kind: 'redirect'; to: string }
  | { kind: 'failed'; status: number; message: string; interactionUid?: string };

type FailureReason = UpstreamFailure | 'unknown_connection' | 'state_missing' | 'state_mismatch' | RefusalReason;

const REFUSALS: Record<RefusalReason, (c: Connection) => string> = {
  disabled: () => 'This account is disabled. Contact the administrator of this service.',
  no_email: (c) => `${c.name} did not share an email address, which we need to create your account.`,
  registration_closed: () => 'New accounts cannot be created here at the moment.',
  unverified_email: (c) => `${c.name} did not say that your email address is confirmed, which we need to create your account through it. Create an account here with your email address instead.`,
  email_not_verified: () => 'Confirm your email address first: sign in with "Email me a sign-in link", which confirms it.',
  confirmation_required: () => 'This service needs a confirmed email address before anyone signs in, so new accounts cannot be made this way. Create an account here with your email address first.',
};

/** The browser's side of a federated sign-in: leaving for the upstream, its callback, linking. */
export function createFederatedLogin(deps: {
  connections: ConnectionsService;
  upstream: Upstream;
  federated: FederatedAccounts;
  preauth: PreauthenticatedLogin;
  audit: Audit;
  publicUrl: string;
  secure: boolean;
}) {
  const { connections, upstream, federated, preauth, audit } = deps;
  const cookie = (path: string, maxAge: number) => ({ signed: true, httpOnly: true, sameSite: 'lax' as const, secure: deps.secure, path, maxAge: maxAge * 1000, overwrite: true });

  function readJson<T extends { exp: number }>(ctx: Context, name: string): T | undefined {
    const raw = ctx.cookies.get(name, { signed: true });
    if (!raw) return undefined;
    try {
      const value = JSON.parse(Buffer.from(raw, 'base64url').toString('utf8')) as T;
      return value.exp > Date.now() / 1000 ? value : undefined;
    } catch {
      return undefined;
    }
  }
  const writeJson = (ctx: Context, name: string, path: string, seconds: number, value: object) =>
    ctx.cookies.set(name, Buffer.from(JSON.stringify({ ...value, exp: Math.floor(Date.now() / 1000) + seconds })).toString('base64url'), cookie(path, seconds));
  const clear = (ctx: Context, name: string, path: string) => ctx.cookies.set(name, null, { ...cookie(path, 0), maxAge: undefined });
  /** The browser's pending upstream sign-ins, oldest first (see STATE_COOKIE). */
  const pendingSignIns = (ctx: Context) => {
    const list = readJson<StateCookie>(ctx, STATE_COOKIE)?.pending;
    return Array.isArray(list) ? list : [];
  };

  async function failure(ctx: Context, connection: Connection | null, reason: FailureReason, message: string, interactionUid?: string): Promise<CallbackOutcome> {
    await audit.record('federated.failure', { detail: { connection: connection?.slug ?? ctx.params?.slug, reason }, ...requestMeta(ctx) });
    return { kind: 'failed', status: upstreamsFault(reason) ? 502 : setupFault(reason) ? 503 : reason === 'disabled' || reason === 'registration_closed' || reason === 'email_not_verified' || reason === 'confirmation_required' ? 403 : 400, message, interactionUid };
  }

  return {
    /** Where to send the browser to sign in upstream for a pending sign-in; throws UpstreamError. */
    async start(ctx: Context, connection: Connection, interactionUid: string): Promise<string> {
      try {
        const request = await upstream.authorizationRequest(connection, callbackUrl(deps.publicUrl, connection.slug));
        const { url, ...pending } = request;
        const now = Date.now() / 1000;
        const others = pendingSignIns(ctx).filter((p) => p.exp > now).slice(1 - MAX_PENDING);
        const added: PendingSignIn = { ...pending, connectionId: connection.id, interactionUid, exp: Math.floor(now) + STATE_SECONDS };
        writeJson(ctx, STATE_COOKIE, '/', STATE_SECONDS, { pending: [...others, added] } satisfies Omit<StateCookie, 'exp'>);
        return url;
      } catch (err) {
        if (err instanceof UpstreamError) await audit.record('federated.failure', { detail: { connection: connection.slug, reason: err.reason }, ...requestMeta(ctx) });
        throw err;
      }
    },

    /** Finishes the upstream leg at /callback/<slug>; never throws for anything the upstream or browser sends. */
    async callback(ctx: Context, slug: string): Promise<CallbackOutcome> {
      const connection = await connections.findBySlug(slug);
      if (!connection) return failure(ctx, null, 'unknown_connection', 'This sign-in provider does not exist.');
      const all = pendingSignIns(ctx);
      const pending = all.find((p) => p.state === ctx.query.state && p.exp > Date.now() / 1000);
      if (!pending)
        return failure(ctx, connection, 'state_missing', `This ${connection.name} sign-in was not started in this browser, or took too long. Start again from the app.`);
      const rest = all.filter((p) => p !== pending);
      if (rest.length) writeJson(ctx, STATE_COOKIE, '/', STATE_SECONDS, { pending: rest });
      else clear(ctx, STATE_COOKIE, '/');
      // Started for another connection: an answer meant for one provider, delivered to another's callback.
      if (pending.connectionId !== connection.id)
        return failure(ctx, connection, 'state_mismatch', `This ${connection.name} sign-in could not be matched to the one you started. Start again.`, pending.interactionUid);
      if (!connection.enabled) return failure(ctx, connection, 'unknown_connection', `Sign-in with ${connection.name} is turned off.`, pending.interactionUid);

      // The URL the upstream redirected to, as registered there (the public URL, not the Host header).
      const current = new URL(callbackUrl(deps.publicUrl, connection.slug));
      current.search = ctx.querystring;
      let profile;
      try {
        profile = await upstream.complete(connection, current, pending);
      } catch (err) {
        if (!(err instanceof UpstreamError)) throw err;
        return failure(ctx, connection, err.reason, err.message, pending.interactionUid);
      }

      const meta = requestMeta(ctx);
      const outcome = await federated.resolve(connection, profile, meta);
      if (outcome.kind === 'refused') return failure(ctx, connection, outcome.reason, REFUSALS[outcome.reason](connection), pending.interactionUid);
      if (outcome.kind === 'link') {
        writeJson(ctx, LINK_COOKIE, '/', LINK_SECONDS, {
          connectionId: connection.id,
          subject: profile.subject,
          email: profile.email!,
          userId: outcome.user.id,
          emailVerified: outcome.emailVerified,
          interactionUid: pending.interactionUid,
        } satisfies Omit<PendingLink, 'exp'>);
        return { kind: 'redirect', to: '/link-account' };
      }
      return { kind: 'redirect', to: await preauth.complete(ctx, outcome.user.id, pending.interactionUid, 'fed', connection.ownerClientId ?? undefined) };
    },

    /** The link waiting for the user to prove their local account, with its connection. */
    async pendingLink(ctx: Context) {
      const link = readJson<PendingLink>(ctx, LINK_COOKIE);
      const connection = link ? await connections.find(link.connectionId).catch(() => null) : null;
      // A connection turned off since stops the links it left waiting, as it stops its sign-ins.
      return link && connection?.enabled ? { link, connection } : undefined;
    },

    /**
     * After the user proved the local account (password or magic link): links the upstream
     * account if the proof was for the account the link waits for, then signs them in.
     */
    async completeLink(ctx: Context, provedUserId: string): Promise<boolean> {
      const pending = await this.pendingLink(ctx);
      if (!pending || !pending.link.emailVerified || pending.link.userId !== provedUserId) return false;
      try {
        await federated.link(provedUserId, pending.connection, { subject: pending.link.subject, email: pending.link.email }, requestMeta(ctx));
      } catch (err) {
        // Refused for good (the upstream account is someone else's by now): the link ends. A
        // failure on Latch's side keeps it for the retry of the emailed link it gave back.
        if (err instanceof AppError && err.status < 500) clear(ctx, LINK_COOKIE, '/');
        throw err;
      }
      clear(ctx, LINK_COOKIE, '/');
      return true;
    },

    cancelLink: (ctx: Context) => clear(ctx, LINK_COOKIE, '/'),
  };
}

export type FederatedLogin = ReturnType<typeof createFederatedLogin>;
