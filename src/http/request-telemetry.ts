import { randomUUID } from 'node:crypto';
import type { Middleware } from 'koa';
import type { Logger } from 'pino';
import type { Metrics } from '../metrics/metrics.js';

/**
 * Per request, timed once: a request id (reused from x-request-id or made, and echoed back), one
 * log line and the metrics sample. One middleware rather than two: every layer costs each request
 * of the hot endpoints a promise and a stack frame.
 */
export function requestTelemetry(logger: Logger, metrics: Metrics): Middleware {
  return async (ctx, next) => {
    const started = process.hrtime.bigint();
    const id = ctx.get('x-request-id') || randomUUID();
    ctx.set('x-request-id', id);
    try {
      await next();
    } finally {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      metrics.recordRequest(ctx, seconds);
      if (logger.isLevelEnabled('info')) {
        // The path only: query strings can carry tokens and codes.
        logger.info({ reqId: id, method: ctx.method, path: ctx.path, status: ctx.status, ms: Math.round(seconds * 1e4) / 10 }, 'request');
      }
    }
  };
}
