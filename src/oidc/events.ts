import type Provider from 'oidc-provider';
import type { Logger } from 'pino';
import type { KoaContextWithOIDC } from 'oidc-provider';
import type { Audit } from '../audit/audit.service.js';
import { answerUnavailable } from './unavailable.js';

// Provider events worth an operator's attention (oidc-provider docs/events.md).
const WARN = ['grant.error', 'authorization.error', 'introspection.error', 'revocation.error', 'userinfo.error', 'end_session.error', 'backchannel.error'];

export function forwardEvents(provider: Provider, logger: Logger, audit: Audit) {
  const log = logger.child({ component: 'oidc' });
  provider.on('server_error', (ctx, err) => {
    log.error({ err }, 'server_error');
    answerUnavailable(ctx, err);
  });
  for (const event of WARN) {
    provider.on(event as 'grant.error', (_ctx: unknown, err: Error & { error_description?: string }) =>
      log.warn({ event, error: err.message, detail: err.error_description }, event),
    );
  }
  provider.on('grant.success', () => log.debug({ event: 'grant.success' }, 'grant.success'));
  // Browser sign-out (RP-initiated logout) goes to the audit log like API logouts.
  provider.on('end_session.success', (ctx: KoaContextWithOIDC) => {
    const userId = ctx.oidc.session?.accountId;
    if (!userId) return;
    void audit.record('logout', {
      userId,
      ip: ctx.ip,
      userAgent: ctx.get('user-agent') || undefined,
      detail: { via: 'browser', client: ctx.oidc.client?.clientId },
    });
  });
}
