import type { KoaContextWithOIDC, Grant, PromptDetail } from 'oidc-provider';

type Details = PromptDetail['details'] & {
  missingOIDCScope?: string[];
  missingOIDCClaims?: string[];
  missingResourceScopes?: Record<string, string[]>;
};

/** Adds what the consent prompt reported missing to a grant (new or existing). */
export function applyConsent(grant: Grant, details: Details): Grant {
  if (details.missingOIDCScope?.length) grant.addOIDCScope(details.missingOIDCScope.join(' '));
  if (details.missingOIDCClaims?.length) grant.addOIDCClaims(details.missingOIDCClaims);
  for (const [indicator, scopes] of Object.entries(details.missingResourceScopes ?? {})) {
    grant.addResourceScope(indicator, scopes.join(' '));
  }
  return grant;
}

/**
 * loadExistingGrant: the session's grant, and for clients an admin marked trusted (first party) a
 * grant covering everything requested, so their users never see a consent page.
 */
export async function loadExistingGrant(ctx: KoaContextWithOIDC): Promise<Grant | undefined> {
  const { oidc } = ctx;
  const client = oidc.client!;
  const session = oidc.session!;
  const grantId = oidc.result?.consent?.grantId || session.grantIdFor(client.clientId);
  const existing = grantId ? await oidc.provider.Grant.find(grantId) : undefined;
  if (!(client as { trusted?: boolean }).trusted || !session.accountId) return existing;

  const grant = existing ?? new oidc.provider.Grant({ clientId: client.clientId, accountId: session.accountId });
  const requested = [...oidc.requestParamScopes];
  grant.addOIDCScope(requested.join(' '));
  grant.addOIDCClaims([...oidc.requestParamClaims]);
  for (const [indicator, server] of Object.entries(oidc.resourceServers ?? {})) {
    const offered = new Set((server.scope ?? '').split(' '));
    grant.addResourceScope(indicator, requested.filter((s) => offered.has(s)).join(' '));
  }
  await grant.save();
  return grant;
}
