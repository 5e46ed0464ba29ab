import { interactionPolicy } from 'oidc-provider';
import { sessionServes } from './preauthenticated-login.js';

const { Check, base } = interactionPolicy;

/**
 * oidc-provider's default prompts, plus two login checks: a session whose user no longer resolves
 * (disabled or deleted) asks for a new sign-in (the default checks look at the session's account
 * id only and would go on to consent with no account), and so does a session made through another
 * app's own upstream connection.
 */
export function createInteractionPolicy() {
  const policy = base();
  const login = policy.get('login')!;
  // Right after 'no_session', before checks that assume an account.
  login.checks.splice(
    1,
    0,
    new Check('account_unavailable', 'The account of this session is no longer available', (ctx) =>
      ctx.oidc.session?.accountId && !ctx.oidc.account ? Check.REQUEST_PROMPT : Check.NO_NEED_TO_PROMPT,
    ),
  );
  // A session made through another app's own upstream connection serves only that app.
  login.checks.splice(
    2,
    0,
    new Check('app_only_session', 'The session was made for another application only', (ctx) =>
      ctx.oidc.session?.accountId && !sessionServes(ctx.oidc.session.acr, String(ctx.oidc.client?.clientId)) ? Check.REQUEST_PROMPT : Check.NO_NEED_TO_PROMPT,
    ),
  );
  return policy;
}
