import type { Context } from 'koa';
import type Provider from 'oidc-provider';

// Set when a magic link is used; the next login prompt in this browser (within two minutes)
// completes with that user, then clears it. Signed and HttpOnly.
const PREAUTH_COOKIE = 'latch.preauth';
const PREAUTH_SECONDS = 120;

export type MagicLinkLogin = ReturnType<typeof createMagicLinkLogin>;

export function createMagicLinkLogin(provider: Provider, options: { secure: boolean; accountLoginPath: string }) {
  return {
    /**
     * Signs the user in after a used magic link and returns where to send the browser: back to the
     * sign-in the link was asked from, while it is pending, or else into the account pages. Either
     * way the login prompt there finds the pre-authentication cookie. (The provider's interaction
     * cookie is scoped to /interaction/<uid>, so the sign-in cannot be finished from here directly.)
     */
    async complete(ctx: Context, userId: string, interactionUid?: string): Promise<string> {
      ctx.cookies.set(PREAUTH_COOKIE, `${userId}.${Math.floor(Date.now() / 1000) + PREAUTH_SECONDS}`, {
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

    /** The user a recent magic link signed in, once (the cookie is cleared). */
    takePreauthenticated(ctx: Context): string | undefined {
      const value = ctx.cookies.get(PREAUTH_COOKIE, { signed: true });
      if (!value) return undefined;
      ctx.cookies.set(PREAUTH_COOKIE, null, { signed: true, overwrite: true });
      const [userId, expires] = value.split('.');
      return userId && Number(expires) > Date.now() / 1000 ? userId : undefined;
    },
  };
}
