// What each scope means to the person on the consent page.
const DESCRIPTIONS: Record<string, string> = {
  openid: 'Know who you are (your account identifier)',
  profile: 'See your name and username',
  email: 'See your email address and whether it is verified',
  offline_access: 'Stay connected when you are not using it',
};

type Details = { missingOIDCScope?: string[]; missingOIDCClaims?: string[]; missingResourceScopes?: Record<string, string[]> };

export function describePermissions(details: Details, resourceName: (indicator: string) => string): string[] {
  const items = (details.missingOIDCScope ?? []).map((s) => DESCRIPTIONS[s] ?? `Use the "${s}" permission`);
  if (details.missingOIDCClaims?.length) items.push(`See these details: ${details.missingOIDCClaims.join(', ')}`);
  for (const [indicator, scopes] of Object.entries(details.missingResourceScopes ?? {})) {
    items.push(`Access ${resourceName(indicator)}${scopes.length ? ` (${scopes.join(', ')})` : ''} on your behalf`);
  }
  return items;
}
