import type { AsyncLocalStorage } from 'node:async_hooks';
// oidc-provider runs each of its requests in an AsyncLocalStorage holding the Koa context (the
// store behind its public `Provider.ctx`). Latch's per-request state uses that same storage
// instead of a second one: every promise pays for each AsyncLocalStorage in use, and with two
// of them a promise costs about 2.5 times as much as with one (measured on Node 22).
import providerStorage from 'oidc-provider/lib/helpers/als.js';

const storage = providerStorage as AsyncLocalStorage<object>;

/** Runs `fn` with `ctx` as the current request, as the provider does for its own routes. */
export const runInRequest = <T>(ctx: object, fn: () => T): T => storage.run(ctx, fn);

/** The Koa context of the request being served, inside the provider or `runInRequest`. */
export const currentRequest = (): object | undefined => storage.getStore();

/** Runs `fn` outside any request: work that outlives its request writes on its own, not in the request's unit of work. */
export const outsideRequest = <T>(fn: () => T): T => storage.exit(fn);
