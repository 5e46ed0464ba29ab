import Router from '@koa/router';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import type { Metrics } from '../../metrics/metrics.js';
import { matchesConfiguredSecret } from '../configured-secret.js';
import { AppError } from '../problem.js';

type Deps = {
  metrics: Metrics;
  openApiDocument: () => object;
  metricsToken?: string;
  homeUrl?: string;
};

/** GET /, /metrics, /api/openapi.json and the interactive docs at /api/docs. */
export function opsRoutes(deps: Deps) {
  const router = new Router();
  // The docs UI files are read when first asked for (about 1.5 MB nobody may ever request).
  const swaggerDir = createRequire(import.meta.url).resolve('swagger-ui-dist/package.json').replace(/package\.json$/, '');
  const types: Record<string, string> = { 'swagger-ui.css': 'text/css', 'swagger-ui-bundle.js': 'application/javascript' };
  const assets = new Map<string, Buffer>();
  const asset = (file: string) => {
    // Own keys only: a name such as `constructor` or `__proto__` is no file of ours (404).
    if (!Object.hasOwn(types, file)) return undefined;
    if (!assets.has(file)) assets.set(file, readFileSync(join(swaggerDir, file)));
    return { type: types[file]!, body: assets.get(file)! };
  };

  router.get('/', (ctx) => ctx.redirect(deps.homeUrl ?? '/account'));

  router.get('/metrics', async (ctx) => {
    const bearer = /^Bearer\s+(\S+)$/i.exec(ctx.get('authorization'))?.[1];
    if (!matchesConfiguredSecret(bearer, deps.metricsToken)) {
      ctx.set('www-authenticate', 'Bearer realm="metrics"');
      throw new AppError('UNAUTHENTICATED', deps.metricsToken ? 'Send METRICS_TOKEN as a bearer token.' : 'Set METRICS_TOKEN to enable /metrics.');
    }
    ctx.type = deps.metrics.registry.contentType;
    ctx.body = await deps.metrics.text();
  });

  router.get('/api/openapi.json', (ctx) => {
    ctx.body = deps.openApiDocument();
  });

  // Swagger UI from the swagger-ui-dist package (no CDN), started by our own script.
  router.get('/api/docs', (ctx) => {
    ctx.set('content-security-policy', "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; frame-ancestors 'none'");
    ctx.type = 'html';
    ctx.body = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Latch API</title>
<link rel="stylesheet" href="/api/docs/swagger-ui.css"></head>
<body><div id="swagger-ui"></div><noscript>The interactive docs need JavaScript; the raw document is at <a href="/api/openapi.json">/api/openapi.json</a>.</noscript>
<script src="/api/docs/swagger-ui-bundle.js"></script><script src="/static/api-docs.js"></script></body></html>`;
  });
  router.get('/api/docs/:file', (ctx) => {
    const found = asset(ctx.params.file!);
    if (!found) throw new AppError('NOT_FOUND');
    ctx.set('cache-control', 'public, max-age=86400');
    ctx.type = found.type;
    ctx.body = found.body;
  });
  return router.routes();
}
