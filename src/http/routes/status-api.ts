import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { fromRoot } from '../../paths.js';
import type { ApiRegistry } from '../api-routes.js';
import { matchesConfiguredSecret } from '../configured-secret.js';
import { AppError } from '../problem.js';

const VERSION = (JSON.parse(readFileSync(fromRoot('package.json'), 'utf8')) as { version: string }).version;

const StatusOut = z.object({
  status: z.literal('ok'),
  service: z.literal('latch'),
  version: z.string(),
  startedAt: z.iso.datetime(),
  uptimeSeconds: z.number().int(),
});

/** GET /api/status: the service's version and uptime, for monitoring that holds SERVICE_API_TOKEN. */
export function defineStatusApi(api: ApiRegistry, deps: { status: { header: string; token?: string }; startedAt: Date }) {
  const { header, token } = deps.status;
  api.define(
    { method: 'get', path: '/api/status', tag: 'ops', auth: 'service', summary: `Version and uptime; send SERVICE_API_TOKEN in the ${header} header`, responses: { 200: { description: 'Up', schema: StatusOut } } },
    (ctx) => {
      if (!matchesConfiguredSecret(ctx.get(header), token)) throw new AppError('UNAUTHENTICATED', `Send the service token in the ${header} header.`);
      ctx.set('cache-control', 'no-store');
      ctx.body = { status: 'ok', service: 'latch', version: VERSION, startedAt: deps.startedAt, uptimeSeconds: Math.round(process.uptime()) };
    },
  );
}
