import type { Context } from 'koa';
import type { RequestMeta } from '../audit/audit.service.js';

/** Client IP (honouring TRUST_PROXY) and user agent, for audit records and throttling. */
export const requestMeta = (ctx: Context): RequestMeta & { ip: string } => ({ ip: ctx.ip, userAgent: ctx.get('user-agent') || undefined });

/**
 * Settles once the response has gone out (or its connection closed): for work that must not
 * delay the answer, nor show in its time.
 */
export const answered = (ctx: Context): Promise<void> =>
  new Promise((resolve) => {
    if (ctx.res.writableFinished || ctx.res.destroyed) return resolve();
    ctx.res.once('finish', resolve).once('close', resolve);
  });
