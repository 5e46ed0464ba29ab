// The account page's activity list: what each audit event of the user's means to them, and from
// which device and address it came.

const ACTIVITY: Record<string, string> = {
  'login.success': 'Signed in',
  'login.failure': 'Failed sign-in attempt',
  logout: 'Signed out',
  registration: 'Account created',
  'email.verification_sent': 'Confirmation link sent',
  'email.verified': 'Email address confirmed',
  'email.change_requested': 'Change of email address asked for',
  'email.changed': 'Email address changed',
  'password.changed': 'Password changed',
  'password.reset_requested': 'Password reset requested',
  'password.reset': 'Password reset',
  'magic_link.sent': 'Sign-in link sent',
  'magic_link.used': 'Signed in with an emailed link',
  'account.updated': 'Profile updated',
  'federated.linked': 'Linked an account from another provider',
  'federated.unlinked': 'Removed a linked account',
};

type ActivityEvent = { event: string; detail?: unknown; createdAt: Date; ip: string | null; userAgent: string | null };

/** The label of an event, naming the provider of an upstream sign-in (by its slug: that is all the event keeps). */
function activityLabel(e: ActivityEvent) {
  const detail = (e.detail ?? {}) as { method?: unknown; connection?: unknown };
  const provider = typeof detail.connection === 'string' ? detail.connection : undefined;
  if (provider && e.event === 'login.success' && detail.method === 'federated') return `Signed in with ${provider}`;
  if (provider && e.event === 'registration' && detail.method === 'federated') return `Account created with ${provider}`;
  if (provider && e.event === 'federated.linked') return `Linked your ${provider} account`;
  return ACTIVITY[e.event] ?? e.event;
}

/** "Chrome 140 on Linux" from a user agent, for the activity list. */
function device(userAgent: string | null) {
  if (!userAgent) return undefined;
  const browser = /(Edg|Firefox|Chrome|Safari)\/(\d+)/.exec(userAgent);
  const os = /(Windows|Android|iPhone|iPad|Mac OS X|Linux)/.exec(userAgent)?.[1]?.replace('Mac OS X', 'macOS');
  if (!browser) return userAgent.slice(0, 60);
  const name = browser[1] === 'Edg' ? 'Edge' : browser[1];
  return `${name} ${browser[2]}${os ? ` on ${os}` : ''}`;
}

/** A time as the account page shows it. */
export const when = (d: Date) => `${d.toISOString().slice(0, 16).replace('T', ' ')} UTC`;

/** The account page's list of recent security events. */
export const activityItems = (events: ActivityEvent[]) =>
  events.map((e) => ({
    label: activityLabel(e),
    at: e.createdAt.toISOString(),
    when: when(e.createdAt),
    ip: e.ip ?? undefined,
    device: device(e.userAgent),
  }));
