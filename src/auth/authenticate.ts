import type { Audit, RequestMeta } from '../audit/audit.service.js';
import type { OidcStore } from '../db/oidc-store.js';
import { accountThrottleKey, type LoginThrottle } from './login-throttle.js';
import type { PasswordHasher } from '../passwords/passwords.js';
import { normalizeLogin, type User } from '../users/users.service.js';

export type LoginResult =
  | { ok: true; user: User }
  | { ok: false; reason: 'invalid_credentials' | 'email_not_verified' }
  | { ok: false; reason: 'throttled'; retryAfter: number };

/**
 * Password login shared by the login page, the JSON API and the password grant. Unknown user,
 * wrong password and disabled account give the same answer after the same argon2 work. Its reads
 * and writes go through the hot path store: a sign-in is argon2 plus these, many times a second.
 */
export function createAuthenticator(deps: {
  store: Pick<OidcStore, 'findUserByLogin' | 'recordLogin'>;
  hasher: PasswordHasher;
  throttle: LoginThrottle;
  audit: Audit;
  allowUnverifiedLogin: () => boolean;
  onResult?: (result: 'success' | 'invalid_credentials' | 'email_not_verified' | 'throttled') => void;
}) {
  return async function authenticate(input: { login: string; password: string } & RequestMeta): Promise<LoginResult> {
    const login = normalizeLogin(input.login);
    const ip = input.ip ?? 'unknown';
    const meta = { ip: input.ip, userAgent: input.userAgent };
    const user = await deps.store.findUserByLogin(login);
    // Failures count per account, however it is named (email or username); per typed login when
    // no account has it.
    const account = user ? accountThrottleKey(user.id) : `login:${login}`;
    // The attempt is counted before the hash, so concurrent ones cannot all pass one check.
    const attempt = await deps.throttle.take(account, ip);
    if (attempt.retryAfter > 0) {
      deps.onResult?.('throttled');
      await Promise.all([
        deps.throttle.giveBack(attempt),
        deps.audit.record('login.failure', { userId: user?.id, ...meta, detail: { login, reason: 'throttled' } }),
      ]);
      return { ok: false, reason: 'throttled', retryAfter: attempt.retryAfter };
    }

    const passwordOk = await deps.hasher.verify(user?.passwordHash, input.password);
    if (!user || !passwordOk || !user.active) {
      // The points taken stay: a failure.
      deps.onResult?.('invalid_credentials');
      await deps.audit.record('login.failure', { userId: user?.id, ...meta, detail: { login } });
      return { ok: false, reason: 'invalid_credentials' };
    }
    // Only said once the password is proven, so it reveals nothing to a guesser.
    if (!user.emailVerified && !deps.allowUnverifiedLogin()) {
      deps.onResult?.('email_not_verified');
      await deps.throttle.giveBack(attempt);
      return { ok: false, reason: 'email_not_verified' };
    }
    deps.onResult?.('success');
    // Upgrade the stored hash when the configured argon2 cost changed since it was made.
    const passwordHash = user.passwordHash !== null && deps.hasher.needsRehash(user.passwordHash) ? await deps.hasher.hash(input.password) : undefined;
    // One group commit: the counters' return, the last sign-in and the audit event.
    await Promise.all([
      deps.throttle.succeeded(attempt),
      deps.store.recordLogin(user.id, new Date(), passwordHash),
      deps.audit.record('login.success', { userId: user.id, ...meta, detail: { method: 'password' } }),
    ]);
    return { ok: true, user };
  };
}

export type Authenticate = ReturnType<typeof createAuthenticator>;
