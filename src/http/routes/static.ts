import Router from '@koa/router';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { extname, join } from 'node:path';
import { fromRoot } from '../../paths.js';

const TYPES: Record<string, string> = { '.css': 'text/css', '.js': 'application/javascript' };

/** The files in public/, read once at start and served under /static with an ETag. */
export function staticRoutes() {
  const dir = fromRoot('public');
  const files = new Map(
    readdirSync(dir)
      .filter((name) => TYPES[extname(name)])
      .map((name) => {
        const body = readFileSync(join(dir, name));
        return [name, { body, type: TYPES[extname(name)]!, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 16)}"` }];
      }),
  );
  const router = new Router();
  router.get('/static/:file', (ctx, next) => {
    const file = files.get(ctx.params.file!);
    if (!file) return next();
    ctx.set('cache-control', 'public, max-age=3600');
    ctx.etag = file.etag;
    ctx.type = file.type;
    ctx.status = 200;
    if (ctx.fresh) {
      ctx.status = 304;
      return;
    }
    ctx.body = file.body;
  });
  return router.routes();
}
