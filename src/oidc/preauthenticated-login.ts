import type { Context } from 'koa';
import type Provider from 'oidc-provider';
import { ACCOUNT_CLIENT_ID } from './first-party-clients.js';

// Set when a user proved who they are away from the login form (a magic link, an upstream
// provider): the login prompt it was meant for (within two minutes) completes with that user,
// then clears it. Bound to that sign-in (an interaction's uid, or the account pages' own), so a
// leftover cookie can never complete another sign-in in this browser. Signed and HttpOnly.
const PREAUTH_COOKIE = 'latch.preauth';
const PREAUTH_SECONDS = 120;
// Bound to the account pages' sign-in rather than to one interaction.
const FOR_ACCOUNT = 'account';

/** How the user authenticated (the ID token's `amr`): an emailed link, an upstream provider, a password. */
const METHODS = ['email', 'fed', 'pwd'] as const;
export type PreauthMethod = (typeof METHODS)[number];

export type PreauthenticatedLogin = ReturnType<typeof createPreauthenticatedLogin>;

export function createPreauthenticatedLogin(provider: Provider, options: { secure: boolean; accountLoginPath: string }) {
  const cookieOptions = { signed: true, httpOnly: true, sameSite: 'lax' as const, secure: options.secure, overwrite: true };
  // `onlyFor`: the one app whose sign-ins this may complete (see appOnlySignIn), or '' for any.
  const set = (ctx: Context, userId: string, method: PreauthMethod, boundTo: string, onlyFor = '') =>
    ctx.cookies.set(PREAUTH_COOKIE, [userId, Math.floor(Date.now() / 1000) + PREAUTH_SECONDS, method, boundTo, Buffer.from(onlyFor).toString('base64url')].join('.'), { ...cookieOptions, maxAge: PREAUTH_SECONDS * 1000 });
  const read = (ctx: Context) => {
    const [userId, expires, method, boundTo, onlyFor = ''] = (ctx.cookies.get(PREAUTH_COOKIE, { signed: true }) ?? '').split('.');
    if (!userId || !boundTo || !(Number(expires) > Date.now() / 1000)) return undefined;
    return { userId, method: METHODS.find((m) => m === method) ?? 'email', boundTo, onlyFor: Buffer.from(onlyFor, 'base64url').toString() || undefined };
  };
  // A fresh login prompt on the account pages, even when this browser is signed in as someone
  // else: the user asked to continue as the one the link or provider proved.
  const accountSignIn = `${options.accountLoginPath}?prompt=login`;

  return {
    /**
     * Signs the user in and returns where to send the browser: back to the sign-in this started
     * from, while it is pending, or else into the account pages. Either way the login prompt there
     * finds the pre-authentication cookie. (The provider's interaction cookie is scoped to
     * /interaction/<uid>, so the sign-in cannot be finished from here directly.)
     */
    async complete(ctx: Context, userId: string, interactionUid: string | undefined, method: PreauthMethod, onlyFor?: string): Promise<string> {
      const interaction = interactionUid ? await provider.Interaction.find(interactionUid) : undefined;
      if (interaction && (!onlyFor || interaction.params.client_id === onlyFor)) {
        set(ctx, userId, method, interaction.uid, onlyFor);
        return `/interaction/${encodeURIComponent(interaction.uid)}`;
      }
      // An app's own sign-in completes that app's sign-in only, never the account pages'.
      if (onlyFor) return accountSignIn;
      set(ctx, userId, method, FOR_ACCOUNT);
      return accountSignIn;
    },

    /** The user signed in this way moments ago for this login prompt, once (the cookie is cleared). */
    take(ctx: Context, interaction: { uid: string; params: { client_id?: unknown } }): { userId: string; method: PreauthMethod; onlyFor?: string } | undefined {
      const found = read(ctx);
      const forThis = found && (found.boundTo === interaction.uid || (found.boundTo === FOR_ACCOUNT && interaction.params.client_id === ACCOUNT_CLIENT_ID));
      if (!forThis) return undefined;
      ctx.cookies.set(PREAUTH_COOKIE, null, cookieOptions);
      return { userId: found.userId, method: found.method, onlyFor: found.onlyFor };
    },

    /**
     * When the sign-in a cookie was bound to cannot continue in this browser (an emailed link
     * opened in another browser than the one that asked for it): binds it to the account pages
     * instead and returns where they sign in, or undefined when no such cookie is here.
     */
    moveToAccount(ctx: Context, interactionUid: string): string | undefined {
      const found = read(ctx);
      if (found?.boundTo !== interactionUid || found.onlyFor) return undefined;
      set(ctx, found.userId, found.method, FOR_ACCOUNT);
      return accountSignIn;
    },
  };
}

// A sign-in through an app's own upstream connection: the app's developer chose that upstream, and
// it answers for who its users are. The browser session it makes is marked with the app, and any
// other app (the account pages too) asks the user to sign in again (see interaction-policy.ts).
const APP_ONLY = 'urn:latch:app-only:';
export const appOnlySignIn = (clientId: string) => `${APP_ONLY}${clientId}`;
/** Whether a session made with this `acr` may sign in to `clientId` without asking again. */
export const sessionServes = (acr: string | undefined, clientId: string) => !acr?.startsWith(APP_ONLY) || acr === appOnlySignIn(clientId);

/**
 * The browser's session as Latch's own pages (/account, /admin) read it, directly rather than
 * through an authorization request: none when it was made for one app only.
 */
export async function ownPagesSession(provider: Provider, ctx: Context) {
  const session = await provider.Session.get(ctx as Parameters<Provider['Session']['get']>[0]);
  return sessionServes(session.acr, ACCOUNT_CLIENT_ID) ? session : undefined;
}
