import type { Middleware } from 'koa';
import { koaBody } from 'koa-body';
import { assertStorable } from './storable-input.js';

const parse = koaBody({ json: false, text: false, multipart: false, urlencoded: true, formLimit: '16kb' }) as Middleware;

/** Small urlencoded bodies for our HTML forms, parsed per route (never in front of /o). */
export const formBody = (): Middleware => (ctx, next) =>
  parse(ctx, async () => {
    assertStorable(ctx.request.body);
    await next();
  });
