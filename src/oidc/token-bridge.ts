import type { IncomingMessage } from 'node:http';
import { Readable } from 'node:stream';
import type { Context, Middleware } from 'koa';

/**
 * Lets /api/auth/* use the provider's token and revocation endpoints in-process. The provider
 * reads raw request bodies itself, so it is handed a fresh urlencoded request (same socket and
 * headers, so client IP and user agent stay) instead of the already-parsed JSON or form body.
 */
export function createTokenBridge(oidcMount: Middleware) {
  return async function callProvider(ctx: Context, path: '/o/token' | '/o/token/revocation', params: Record<string, string>) {
    const body = Buffer.from(new URLSearchParams(params).toString());
    const original = ctx.req;
    const req = Object.assign(Readable.from([body]), {
      headers: {
        ...original.headers,
        'content-type': 'application/x-www-form-urlencoded',
        'content-length': String(body.length),
        authorization: undefined,
      },
      method: 'POST',
      url: path,
      socket: original.socket,
      httpVersion: original.httpVersion,
    }) as unknown as IncomingMessage;
    ctx.req = req;
    ctx.request.req = req;
    try {
      await oidcMount(ctx, async () => {
        ctx.status = 404;
      });
    } finally {
      ctx.req = original;
      ctx.request.req = original;
    }
    return { status: ctx.status, body: ctx.body as Record<string, unknown> };
  };
}

export type TokenBridge = ReturnType<typeof createTokenBridge>;
