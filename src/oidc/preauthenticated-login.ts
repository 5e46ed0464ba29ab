import type { Context } from 'koa';
import type Provider from 'oidc-provider';

// Set when a user proved who they are away from the login form (a magic link, an upstream
// provider); the next login prompt in this browser (within two minutes) completes with that user,
// then clears it. Signed and HttpOnly.
const PREAUTH_COOKIE = 'latch.preauth';
const PREAUTH_SECONDS = 120;

/** How the user authenticated (the ID token's `amr`): an emailed link, an upstream provider, a password. */
const METHODS = ['email', 'fed', 'pwd'] as const;
export type PreauthMethod = (typeof METHODS)[number];

export type PreauthenticatedLogin = ReturnType<typeof createPreauthenticatedLogin>;

export function createPreauthenticatedLogin(provider: Provider, options: { secure: boolean; accountLoginPath: string }) {
  return {
    /**
     * Signs the user in and returns where to send the browser: back to the sign-in this started
     * from, while it is pending, or else into the account pages. Either way the login prompt there
     * finds the pre-authentication cookie. (The provider's interaction cookie is scoped to
     * /interaction/<uid>, so the sign-in cannot be finished from here directly.)
     */
    async complete(ctx: Context, userId: string, interactionUid: string | undefined, method: PreauthMethod): Promise<string> {
      ctx.cookies.set(PREAUTH_COOKIE, `${userId}.${Math.floor(Date.now() / 1000) + PREAUTH_SECONDS}.${method}`, {
        signed: true,
        httpOnly: true,
        sameSite: 'lax',
        secure: options.secure,
        maxAge: PREAUTH_SECONDS * 1000,
        overwrite: true,
      });
      if (interactionUid && (await provider.Interaction.find(interactionUid))) return `/interaction/${encodeURIComponent(interactionUid)}`;
      return options.accountLoginPath;
    },

    /** The user signed in this way moments ago, once (the cookie is cleared). */
    take(ctx: Context): { userId: string; method: PreauthMethod } | undefined {
      const value = ctx.cookies.get(PREAUTH_COOKIE, { signed: true });
      if (!value) return undefined;
      ctx.cookies.set(PREAUTH_COOKIE, null, { signed: true, overwrite: true });
      const [userId, expires, method] = value.split('.');
      if (!userId || !(Number(expires) > Date.now() / 1000)) return undefined;
      return { userId, method: METHODS.find((m) => m === method) ?? 'email' };
    },
  };
}
