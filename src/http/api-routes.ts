import Router from '@koa/router';
import compose from 'koa-compose';
import type { Context, Middleware } from 'koa';
import { z, type ZodType } from 'zod';
import { AppError } from './problem.js';
import { assertStorable } from './storable-input.js';

type Method = 'get' | 'post' | 'put' | 'patch' | 'delete';
type Schema = ZodType | undefined;
type Infer<S extends Schema> = S extends ZodType ? z.infer<S> : undefined;

/** One /api operation: the single source for routing, request validation and the OpenAPI document. */
export type ApiRoute<B extends Schema = Schema, Q extends Schema = Schema> = {
  method: Method;
  path: string;
  summary: string;
  tag: string;
  /** Who may call it, for the docs (`service`: the status token's header); enforcement is the `use` middleware and the services. */
  auth: 'none' | 'bearer' | 'service';
  body?: B;
  /** Also accepted as an HTML form body (OAuth2 password forms). */
  form?: boolean;
  query?: Q;
  responses: Record<number, { description: string; schema?: ZodType }>;
  use?: Middleware[];
};

export type Handler<B extends Schema, Q extends Schema> = (
  ctx: Context & { params: Record<string, string> },
  input: { body: Infer<B>; query: Infer<Q>; params: Record<string, string> },
) => Promise<void> | void;

/** Collects /api routes on one router and remembers them for the OpenAPI document. */
export function createApiRegistry() {
  const router = new Router();
  const routes: ApiRoute[] = [];

  function define<B extends Schema = undefined, Q extends Schema = undefined>(route: ApiRoute<B, Q>, handler: Handler<B, Q>) {
    routes.push(route as ApiRoute);
    router[route.method](route.path, ...(route.use ?? []), async (ctx) => {
      // For metrics: the provider, called in-process by some routes, would overwrite Koa's own label.
      ctx.state.route = route.path;
      // Forms are read for the routes that say so (OAuth2 password forms); the rest take JSON only.
      if (!route.form && ctx.request.is('urlencoded')) throw new AppError('UNSUPPORTED_MEDIA_TYPE', 'Send the body as application/json.');
      assertStorable(ctx.query);
      assertStorable(ctx.request.body);
      const body = (route.body ? route.body.parse(ctx.request.body ?? {}) : undefined) as Infer<B>;
      const query = (route.query ? route.query.parse(ctx.query) : undefined) as Infer<Q>;
      await handler(ctx as Context & { params: Record<string, string> }, { body, query, params: ctx.params });
    });
  }

  // A path under /api that no operation has gets a problem document too, not Koa's plain-text 404.
  const unknownPath: Middleware = (ctx, next) => (ctx.path === '/api' || ctx.path.startsWith('/api/') ? Promise.reject(new AppError('NOT_FOUND')) : next());
  return { define, routes, middleware: () => compose([router.routes() as Middleware, unknownPath]) };
}

export type ApiRegistry = ReturnType<typeof createApiRegistry>;
