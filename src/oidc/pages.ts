import type { Configuration, KoaContextWithOIDC } from 'oidc-provider';
import type { Logger } from 'pino';
import type { Views } from '../http/views.js';

type RenderError = NonNullable<Configuration['renderError']>;

/**
 * Pages oidc-provider renders itself: its error page (shown instead of redirecting whenever the
 * redirect URI cannot be trusted), and the logout confirmation and result.
 */
export function createPageRenderers(views: Views, logger: Logger) {
  const renderError: RenderError = async (ctx, out, error) => {
    const status = (error as { status?: number }).status ?? 500;
    if (status >= 500) logger.error({ err: error }, 'provider error');
    ctx.type = 'html';
    ctx.body = await views.render('error', {
      title: 'Sign-in problem',
      heading: 'Sign-in problem',
      message: status >= 500 ? 'Something went wrong on our side. Please try again.' : (out.error_description ?? out.error),
      hint: 'Return to the application you came from and start again.',
    });
  };

  async function logoutSource(ctx: KoaContextWithOIDC, form: string) {
    ctx.type = 'html';
    ctx.body = await views.render('logout', {
      title: 'Sign out',
      form,
      clientName: ctx.oidc.client?.clientName,
    });
  }

  async function postLogoutSuccessSource(ctx: KoaContextWithOIDC) {
    ctx.type = 'html';
    ctx.body = await views.render('logged-out', { title: 'Signed out', clientName: ctx.oidc.client?.clientName });
  }

  return { renderError, logoutSource, postLogoutSuccessSource };
}
