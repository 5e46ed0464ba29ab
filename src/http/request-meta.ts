import type { Context } from 'koa';
import type { RequestMeta } from '../audit/audit.service.js';

/** Client IP (honouring TRUST_PROXY) and user agent, for audit records and throttling. */
export const requestMeta = (ctx: Context): RequestMeta & { ip: string } => ({ ip: ctx.ip, userAgent: ctx.get('user-agent') || undefined });
