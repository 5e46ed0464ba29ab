import type { RequestMeta } from '../audit/audit.service.js';
import { accountThrottleKey, type LoginThrottle } from '../auth/login-throttle.js';
import { AppError } from '../http/problem.js';
import type { PasswordHasher } from '../passwords/passwords.js';
import type { User } from '../users/users.service.js';

/** How recently an account without a password must have signed in to change its email address or delete it. */
export const RECENT_SIGN_IN_SECONDS = 600;

/** What the signed-in user shows before a change that could hand the account to someone else. */
export type OwnerProof = { currentPassword?: string; signedInAt?: number };

/** What assertOwnerPresent says, for the change it guards. */
export type ProofWords = { missing: string; field: string; wrong: string; noPassword: string };

export const EMAIL_CHANGE: ProofWords = {
  missing: 'Enter your current password to change your email address.',
  field: 'required to change the email address',
  wrong: 'The current password is not correct; your email address was not changed.',
  noPassword: 'This account has no password: to change its email address, sign in again on the account page and change it there within ten minutes (or set a password first, with a reset link).',
};

export const DELETION: ProofWords = {
  missing: 'Enter your current password to delete your account.',
  field: 'required to delete the account',
  wrong: 'The password is not correct; your account was not deleted.',
  noPassword: 'This account has no password: to delete it, sign in again on the account page and delete it there within ten minutes (or set a password first, with a reset link).',
};

/**
 * The checks that the account's owner is at the keyboard before a change that could hand the
 * account to someone else, shared by the self-service flows (account-flows.ts).
 */
export function createOwnerProof(d: { hasher: PasswordHasher; loginThrottle: LoginThrottle }) {
  /**
   * The signed-in user proves they know their password before a change that could hand the
   * account to someone else (its email, its password, its deletion). Wrong guesses count as failed
   * sign-ins of the account do, so a stolen token or an unattended session cannot guess freely.
   */
  async function assertCurrentPassword(user: User, password: string | undefined, meta: RequestMeta, wrong = 'The current password is not correct.') {
    if (!password) throw new AppError('VALIDATION_FAILED', 'Enter your current password.', [{ path: 'currentPassword', message: 'required' }]);
    // Counted before the hash (a failure keeps its points), so concurrent guesses cannot all pass one check.
    const attempt = await d.loginThrottle.take(accountThrottleKey(user.id), meta.ip ?? 'unknown');
    const { retryAfter } = attempt;
    if (retryAfter > 0) {
      await d.loginThrottle.giveBack(attempt);
      throw new AppError('TOO_MANY_ATTEMPTS', `Too many failed attempts. Try again in ${Math.ceil(retryAfter / 60)} minute(s).`, undefined, retryAfter);
    }
    if (!(await d.hasher.verify(user.passwordHash, password))) throw new AppError('VALIDATION_FAILED', wrong, [{ path: 'currentPassword', message: 'not correct' }]);
    await d.loginThrottle.succeeded(attempt);
  }

  /**
   * Proof that the account's owner is at the keyboard, as a password change asks, before a change
   * a stolen token or an unattended session must not make: the current password (checked and
   * throttled by assertCurrentPassword), or, for an account without one (it signs in through an
   * upstream provider or emailed links), a sign-in in the last ten minutes, which only the account
   * pages know (`signedInAt`); elsewhere 403 RECENT_SIGN_IN_REQUIRED.
   */
  async function assertOwnerPresent(user: User, proof: OwnerProof, meta: RequestMeta, words: ProofWords) {
    if (user.passwordHash) {
      if (!proof.currentPassword) throw new AppError('VALIDATION_FAILED', words.missing, [{ path: 'currentPassword', message: words.field }]);
      await assertCurrentPassword(user, proof.currentPassword, meta, words.wrong);
    } else if (!(proof.signedInAt !== undefined && Date.now() / 1000 - proof.signedInAt <= RECENT_SIGN_IN_SECONDS)) {
      throw new AppError('RECENT_SIGN_IN_REQUIRED', words.noPassword);
    }
  }

  return { assertCurrentPassword, assertOwnerPresent };
}
