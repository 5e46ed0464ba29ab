import { interactionPolicy } from 'oidc-provider';

const { Check, base } = interactionPolicy;

/**
 * oidc-provider's default prompts, plus one login check: a session whose user no longer resolves
 * (disabled or deleted) asks for a new sign-in. The default checks look at the session's account
 * id only and would go on to consent with no account.
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
  return policy;
}
