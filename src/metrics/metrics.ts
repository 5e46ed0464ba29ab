import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Context } from 'koa';
import { passwordHashCpuSeconds } from '../passwords/passwords.js';
import { metricsText } from './cluster-metrics.js';

/** Prometheus metrics: HTTP traffic per route, sign-ins, tokens issued, the password hashes' CPU, plus process defaults. */
export function createMetrics(options: { inCluster?: boolean } = {}) {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'latch_' });
  const requests = new Counter({ name: 'latch_http_requests_total', help: 'HTTP requests', labelNames: ['method', 'route', 'status'], registers: [registry] });
  const duration = new Histogram({
    name: 'latch_http_request_duration_seconds',
    help: 'HTTP request duration',
    labelNames: ['method', 'route'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [registry],
  });
  const logins = new Counter({ name: 'latch_logins_total', help: 'Password sign-in attempts', labelNames: ['result'], registers: [registry] });
  const tokens = new Counter({ name: 'latch_tokens_issued_total', help: 'Successful token endpoint grants', labelNames: ['grant_type'], registers: [registry] });
  // Beside latch_process_cpu_seconds_total, the share of the CPU that goes to hashing passwords;
  // like it, counted from the registry's creation.
  let counted = passwordHashCpuSeconds();
  if (counted !== undefined) {
    new Counter({
      name: 'latch_password_hash_cpu_seconds_total',
      help: 'CPU time spent computing password hashes (argon2id)',
      registers: [registry],
      collect() {
        // Undefined once a hash with more than one lane has run (ARGON2_PARALLELISM > 1): its
        // lanes' threads are libargon2's own, which the count cannot see. The counter stops.
        const now = passwordHashCpuSeconds();
        if (now === undefined || counted === undefined) return;
        this.inc(now - counted);
        counted = now;
      },
    });
  }

  return {
    registry,
    /** What /metrics answers: with WORKERS=N, the sum over every worker. */
    text: metricsText(registry, options.inCluster ?? false),
    login: (result: string) => logins.inc({ result }),
    tokenIssued: (grantType: string) => tokens.inc({ grant_type: grantType }),
    /** One request's sample; routes are labelled by pattern (never by raw path) to bound cardinality. */
    recordRequest(ctx: Context, seconds: number) {
      const matched = (ctx as { _matchedRoute?: string })._matchedRoute;
      const route = (ctx.state.route as string | undefined) ?? (ctx.path.startsWith('/o/') ? `/o${matched ?? ''}` : (matched ?? 'unmatched'));
      duration.observe({ method: ctx.method, route }, seconds);
      requests.inc({ method: ctx.method, route, status: String(ctx.status) });
    },
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
