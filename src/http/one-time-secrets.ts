import type { Context } from 'koa';
import { z } from 'zod';
import type { SecretBox } from '../federation/secret-box.js';
import type { OneTimeTokens } from '../tokens/one-time-tokens.js';

// From the console form that made a new secret (a client secret, an API key) to the page that
// shows it, once (Post/Redirect/Get): reloading that page shows nothing and makes nothing. The
// secret rides in a cookie encrypted under keys derived from the cookie keys, so any instance can
// open it and no copy is stored; HttpOnly, sent to that one page only, for five minutes. A
// one-time token in the database, consumed when the page shows it, makes that showing the only
// one even if the cookie were copied.
const COOKIE = 'latch.new-secret';
const SECONDS = 5 * 60;
const PURPOSE = 'console-secret';

const Held = z.object({ path: z.string(), userId: z.string(), token: z.string(), kind: z.string(), secret: z.string() });

/** What the page shows: which kind of secret (the page's wording), and the secret. */
export type HeldSecret = { kind: string; secret: string };

export type OneTimeSecrets = ReturnType<typeof createOneTimeSecrets>;

export function createOneTimeSecrets(deps: { box: SecretBox; tokens: OneTimeTokens; secure: boolean }) {
  const { box, tokens } = deps;
  const cookie = (path: string) => ({ httpOnly: true, sameSite: 'strict' as const, secure: deps.secure, path, overwrite: true });

  async function open(sealed: string) {
    try {
      return Held.parse(JSON.parse(await box.open(sealed)));
    } catch {
      return undefined;
    }
  }

  return {
    /**
     * Keeps a new secret for `user` to see once, on the page at `path` (the page to redirect to).
     * Given `make`, the one-time token is written before `make` runs: once a rotation has made its
     * secret the old one no longer works, so nothing that can fail comes after it. Each secret has
     * its own token, so two made one after another (two apps, two tabs) are each shown.
     */
    async hold(ctx: Context, path: string, user: { id: string; email: string }, kind: string, make: string | (() => Promise<string>)) {
      const token = await tokens.issue(PURPOSE, { userId: user.id, email: user.email, ttlSeconds: SECONDS }, { replace: false });
      const secret = typeof make === 'string' ? make : await make();
      const sealed = await box.seal(JSON.stringify({ kind, secret, path, userId: user.id, token }));
      ctx.cookies.set(COOKIE, sealed, { ...cookie(path), maxAge: SECONDS * 1000 });
    },

    /**
     * What was kept for `userId` on the page at `path`, the first time it is asked for; undefined
     * after that, after five minutes, and for anyone else. The cookie is cleared either way.
     */
    async take(ctx: Context, path: string, userId: string): Promise<HeldSecret | undefined> {
      const sealed = ctx.cookies.get(COOKIE);
      if (!sealed) return undefined;
      ctx.cookies.set(COOKIE, null, cookie(path));
      const held = await open(sealed);
      if (!held || held.path !== path || held.userId !== userId) return undefined;
      const used = await tokens.consume(PURPOSE, held.token);
      return used?.userId === userId ? { kind: held.kind, secret: held.secret } : undefined;
    },
  };
}
