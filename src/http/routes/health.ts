import Router from '@koa/router';
import type { Db } from '../../db/prisma.js';
import { migrationNames } from '../../db/migrate.js';

/** /healthz: the process answers. /readyz: the database answers and has every migration applied. */
export function healthRoutes(prisma: Db, provider: 'sqlite' | 'postgresql') {
  const router = new Router();
  const expected = migrationNames(provider);
  router.get('/healthz', (ctx) => {
    ctx.body = { status: 'ok' };
  });
  router.get('/readyz', async (ctx) => {
    ctx.set('cache-control', 'no-store');
    try {
      const rows = await prisma.$queryRawUnsafe<{ name: string }[]>('SELECT name FROM _latch_migrations');
      const applied = new Set(rows.map((r) => r.name));
      const pending = expected.filter((name) => !applied.has(name));
      ctx.status = pending.length ? 503 : 200;
      ctx.body = pending.length ? { status: 'unavailable', reason: 'migrations pending', pending } : { status: 'ok' };
    } catch {
      ctx.status = 503;
      ctx.body = { status: 'unavailable', reason: 'database unreachable' };
    }
  });
  return router.routes();
}
