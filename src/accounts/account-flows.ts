import type { Logger } from 'pino';
import type { Db } from '../db/prisma.js';
import { outsideRequest } from '../oidc/request-context.js';
import type { Provider } from '../db/url.js';
import type { Audit, RequestMeta } from '../audit/audit.service.js';
import { fieldChanges } from '../audit/changes.js';
import type { EmailThrottle } from '../auth/email-throttle.js';
import { revokeUserSessions } from '../auth/revoke-sessions.js';
import type { LoginThrottle } from '../auth/login-throttle.js';
import { AppError } from '../http/problem.js';
import type { MailQueue } from '../mail/mail-queue.js';
import { renderActionMail, renderNoticeMail, type MessageKind } from '../mail/messages.js';
import type { PasswordHasher } from '../passwords/passwords.js';
import { assertPasswordAccepted } from '../passwords/password-policy.js';
import { ACCESS_LINKS, type OneTimeTokens, type TokenPurpose } from '../tokens/one-time-tokens.js';
import { deleteUserRows, guardLastAdmin } from '../users/last-admin.js';
import { NewUser, normalizeLogin, ProfileUpdate, userAuditView, type User, type UsersService } from '../users/users.service.js';
import { createOwnerProof, DELETION, EMAIL_CHANGE, type OwnerProof } from './owner-proof.js';

type Deps = {
  prisma: Db;
  provider: Provider;
  users: UsersService;
  hasher: PasswordHasher;
  tokens: OneTimeTokens;
  mail: MailQueue;
  audit: Audit;
  emailThrottle: EmailThrottle;
  publicUrl: string;
  product: { name: string; supportEmail: string };
  ttl: { verifyEmail: number; resetPassword: number; magicLink: number };
  logger: Logger;
  loginThrottle: LoginThrottle;
};

/** Where each emailed token leads: a page that asks for confirmation before using it. */
const LINK_PATH: Record<TokenPurpose, string> = {
  'verify-email': '/verify-email',
  // The same page: either way, following it proves the address it was sent to.
  'email-change': '/verify-email',
  'reset-password': '/reset-password',
  'magic-link': '/magic-link',
};

/**
 * An emailed link works only while its address is still the account's: once the email changes,
 * whoever keeps the old mailbox (often why it changed) can no longer sign in or reset with it.
 */
const sentToCurrentAddress = (record: { email: string }, user: Pick<User, 'emailNormalized'>) => normalizeLogin(record.email) === user.emailNormalized;

/**
 * Self-service account journeys (registration, verification, password change and reset, magic
 * links), shared by the JSON API and the pages. Plain functions over the services; no HTTP here.
 */
export function createAccountFlows(d: Deps) {
  const mailContext = { productName: d.product.name, supportEmail: d.product.supportEmail };
  const { assertCurrentPassword, assertOwnerPresent } = createOwnerProof(d);

  /** Emails a link of `kind` to `user.email` (for an address change, the new address). */
  async function sendLink(kind: MessageKind & TokenPurpose, user: Pick<User, 'id' | 'email'>, ttlSeconds: number, interactionUid?: string) {
    const token = await d.tokens.issue(kind, { userId: user.id, email: user.email, ttlSeconds, interactionUid });
    const url = `${d.publicUrl}${LINK_PATH[kind]}?token=${encodeURIComponent(token)}`;
    await d.mail.enqueue(await renderActionMail(kind, user.email, { url, ttlSeconds }, mailContext));
  }

  async function mailVerification(user: User, meta: RequestMeta) {
    await sendLink('verify-email', user, d.ttl.verifyEmail);
    await d.audit.record('email.verification_sent', { userId: user.id, ...meta });
  }

  // Work that runs after its request has answered; close() waits for it.
  const afterAnswer = new Set<Promise<void>>();

  /**
   * Emails a reset or sign-in link if the address has an active account, after the answer: the
   * token, the mail and the audit event are work only an account causes, and the answer must not
   * tell, by its content or by its time, whether there is one. The work starts once `answered`
   * settles (the route's response has gone out; begun beside it, the work made known addresses
   * answer about twice as slowly) and runs on its own, outside the request; a failure is logged
   * (the answer was the same either way).
   */
  function linkIfAccountAfterAnswer(kind: 'reset-password' | 'magic-link', email: string, meta: RequestMeta, answered: Promise<unknown>, interactionUid?: string) {
    const ttl = kind === 'reset-password' ? d.ttl.resetPassword : d.ttl.magicLink;
    const work = async () => {
      const user = await d.users.findByLogin(email);
      if (!user?.active || user.emailNormalized !== normalizeLogin(email)) return;
      await sendLink(kind, user, ttl, interactionUid);
      await d.audit.record(kind === 'reset-password' ? 'password.reset_requested' : 'magic_link.sent', { userId: user.id, ...meta });
    };
    const running: Promise<void> = answered
      .then(() => outsideRequest(work))
      .catch((err: unknown) => d.logger.error({ err, kind }, 'emailed link not sent'))
      .finally(() => afterAnswer.delete(running));
    afterAnswer.add(running);
  }

  /**
   * The address's owner proved it with an emailed link (confirmation, reset or sign-in). Until now
   * unconfirmed, the account may have been made for this address by an app's own upstream, whose
   * word on addresses is its developer's: those links end, and with them the account's sessions
   * and tokens, so the owner has the account alone. False when the address is no longer the user's.
   */
  async function addressProven(userId: string, email: string) {
    const before = await d.users.findById(userId);
    if (!(await d.users.markEmailVerified(userId, email))) return false;
    if (before && !before.emailVerified) {
      const appOwn = await d.prisma.connection.findMany({ where: { ownerClientId: { not: null } }, select: { id: true } });
      const { count } = appOwn.length ? await d.prisma.federatedIdentity.deleteMany({ where: { userId, connectionId: { in: appOwn.map((c) => c.id) } } }) : { count: 0 };
      if (count) await revokeUserSessions(d.prisma, userId);
    }
    return true;
  }

  async function throttled(purpose: string, email: string, meta: RequestMeta) {
    const wait = await d.emailThrottle(purpose, email, meta.ip ?? 'unknown');
    if (wait > 0) throw new AppError('TOO_MANY_REQUESTS', `Too many requests; try again in ${Math.ceil(wait / 60)} minute(s).`, undefined, wait);
  }

  const flows = {
    assertStrongPassword: assertPasswordAccepted,

    /** Resolves once the work started after answering (emailed links) has finished. */
    async settled() {
      while (afterAnswer.size) await Promise.all(afterAnswer);
    },

    async register(input: { email: string; password: string; username?: string; name?: string; givenName?: string; familyName?: string }, meta: RequestMeta) {
      const data = NewUser.pick({ email: true, username: true, name: true, givenName: true, familyName: true }).parse(input);
      await assertPasswordAccepted(input.password, [data.email, data.username, data.name]);
      // Throttled before anything is created, so a refused request leaves nothing half done.
      await throttled('verify-email', data.email, meta);
      const user = await d.users.create({ ...data, password: input.password, emailVerified: false }, { registered: true });
      await d.audit.record('registration', { userId: user.id, ...meta });
      await mailVerification(user, meta);
      return user;
    },

    /** Sends (again) the confirmation link; throttled like every mail a request can trigger. */
    async sendVerification(user: User, meta: RequestMeta) {
      await throttled('verify-email', user.email, meta);
      await mailVerification(user, meta);
    },

    /**
     * Follows a confirmation link: proves the account's address, or, for an address change its
     * owner asked for, moves the account to the new address now (409 EMAIL_TAKEN if another
     * account has taken it meanwhile). Returns the account and, after a move, its new address.
     */
    async verifyEmail(token: string, meta: RequestMeta): Promise<{ userId: string; movedTo?: string }> {
      const record = await d.tokens.consume(['verify-email', 'email-change'], token);
      if (record?.purpose === 'email-change') {
        const user = await d.users.findById(record.userId);
        if (!user?.active) throw new AppError('INVALID_TOKEN');
        const moved = await d.users.moveToProvenAddress(user.id, record.email);
        await d.audit.record('email.changed', { userId: user.id, detail: { changes: fieldChanges(userAuditView(user), userAuditView(moved)) }, ...meta });
        await d.mail.enqueue(await renderNoticeMail('email-changed', user.email, { newEmail: moved.email }, mailContext));
        return { userId: user.id, movedTo: moved.email };
      }
      if (!record || !(await addressProven(record.userId, record.email))) throw new AppError('INVALID_TOKEN');
      await d.audit.record('email.verified', { userId: record.userId, ...meta });
      return { userId: record.userId };
    },

    /** The address the user asked to move the account to, while its confirmation link is live. */
    pendingEmail: async (userId: string) => (await d.tokens.pending(userId, 'email-change'))?.email,

    /** Same answer, in the same time, whether or not the address has an account; the link is sent once `answered` settles (see linkIfAccountAfterAnswer). */
    async requestPasswordReset(email: string, meta: RequestMeta, answered: Promise<unknown> = Promise.resolve(), options: { recordAs?: RequestMeta } = {}) {
      await throttled('reset-password', email, meta);
      // `recordAs`: the request details the user's own event keeps, when the request is not theirs (an admin's).
      linkIfAccountAfterAnswer('reset-password', email, options.recordAs ?? meta, answered);
    },

    /** Checks a reset token without using it, for the reset form. */
    async peekResetToken(token: string) {
      const record = await d.tokens.peek('reset-password', token);
      if (!record) throw new AppError('INVALID_TOKEN');
      return record;
    },

    async resetPassword(token: string, password: string, meta: RequestMeta) {
      const pending = await flows.peekResetToken(token);
      const user = await d.users.findById(pending.userId);
      if (!user?.active || !sentToCurrentAddress(pending, user)) throw new AppError('INVALID_TOKEN');
      await assertPasswordAccepted(password, [user.email, user.username, user.name]);
      // Consume before changing anything: of two concurrent uses, only one gets here.
      const record = await d.tokens.consume('reset-password', token);
      if (!record) throw new AppError('INVALID_TOKEN');
      await d.users.setPassword(user.id, password);
      // Following the link proved the mailbox.
      await addressProven(user.id, record.email);
      await revokeUserSessions(d.prisma, user.id);
      await d.tokens.revokeAll(user.id, ACCESS_LINKS);
      await d.audit.record('password.reset', { userId: user.id, ...meta });
      return user.id;
    },

    /** Same answer, in the same time, whether or not the address has an account; the link is sent once `answered` settles (see linkIfAccountAfterAnswer). */
    async requestMagicLink(email: string, meta: RequestMeta, answered: Promise<unknown> = Promise.resolve(), interactionUid?: string) {
      await throttled('magic-link', email, meta);
      linkIfAccountAfterAnswer('magic-link', email, meta, answered, interactionUid);
    },

    async peekMagicLink(token: string) {
      const record = await d.tokens.peek('magic-link', token);
      if (!record) throw new AppError('INVALID_TOKEN');
      return record;
    },

    /** Uses a magic link; returns the user to sign in and the login page it was asked from, if any. */
    /** Signs in with an emailed link. `onFailure` is handed what gives the link back, should what it is exchanged for fail to be stored. */
    async useMagicLink(token: string, meta: RequestMeta, onFailure?: (giveBack: () => Promise<unknown>) => void) {
      const record = await d.tokens.consume('magic-link', token);
      const user = record ? await d.users.findById(record.userId) : null;
      if (!record || !user?.active || !sentToCurrentAddress(record, user)) throw new AppError('INVALID_TOKEN');
      onFailure?.(() => d.tokens.giveBack(record.tokenHash, record.consumedAt!));
      if (user.passwordUnproven) {
        // Chosen when the address was registered, by someone who never proved it: perhaps not its
        // owner, who proves it now. The password and its sessions end, and so do the links the
        // registrant could still follow (a move to an address of theirs); a reset link sets a new one.
        await d.users.clearPassword(user.id);
        await revokeUserSessions(d.prisma, user.id);
        await d.tokens.revokeAll(user.id, ACCESS_LINKS);
      }
      await addressProven(user.id, record.email);
      await d.audit.record('magic_link.used', { userId: user.id, ...meta });
      return { user, interactionUid: record.interactionUid ?? undefined };
    },

    /** Changes the password; every other session and refresh token of the user, and every emailed sign-in or reset link, is revoked. */
    async changePassword(user: User, current: string, next: string, meta: RequestMeta, keep: { sessionUid?: string; grantId?: string }) {
      await assertCurrentPassword(user, current, meta);
      await assertPasswordAccepted(next, [user.email, user.username, user.name]);
      await d.users.setPassword(user.id, next);
      await revokeUserSessions(d.prisma, user.id, keep);
      await d.tokens.revokeAll(user.id, ACCESS_LINKS);
      await d.audit.record('password.changed', { userId: user.id, ...meta });
    },

    /**
     * Edits the profile. A new email address would become the one that signs in and receives
     * reset links, so asking for it takes proof that the account's owner is at the keyboard, as a
     * password change does: a stolen token or an unattended session must not lead to a takeover.
     * That is the current password, or, for an account without one (it signs in through an
     * upstream provider or emailed links), a sign-in in the last ten minutes, which only the
     * account pages know (`signedInAt`). The account keeps its address until the link mailed to
     * the new one is followed (verifyEmail): an address nobody proved never becomes an account's,
     * or its owner's emailed sign-in would land in an account someone else holds. Returns the
     * user and the address waiting for its confirmation, if one was asked for.
     */
    async updateProfile(user: User, edit: ProfileUpdate, meta: RequestMeta, proof: OwnerProof = {}): Promise<{ user: User; pendingEmail?: string }> {
      const { email, ...rest } = ProfileUpdate.parse(edit); // a bad address is named before the password is asked for
      const emailChanging = email !== undefined && normalizeLogin(email) !== user.emailNormalized;
      if (emailChanging) {
        await assertOwnerPresent(user, proof, meta, EMAIL_CHANGE);
        await d.users.assertLoginsFree(user, { email });
        await throttled('verify-email', email, meta);
      }
      const input = emailChanging ? rest : { email, ...rest };
      // A request for a new address alone changes nothing yet, and says so in the activity list.
      const result = Object.keys(input).length || !emailChanging ? await d.users.updateProfile(user, input) : { user };
      if (result.user !== user) await d.audit.record('account.updated', { userId: user.id, detail: { fields: Object.keys(input), changes: fieldChanges(userAuditView(user), userAuditView(result.user)) }, ...meta });
      if (!emailChanging) return { user: result.user };
      const pendingEmail = email.trim();
      await sendLink('email-change', { id: user.id, email: pendingEmail }, d.ttl.verifyEmail);
      await d.audit.record('email.change_requested', { userId: user.id, detail: { email: pendingEmail }, ...meta });
      return { user: result.user, pendingEmail };
    },

    /**
     * Deletes the signed-in user's own account, with the proof an email change takes (it cannot
     * be undone, and a stolen token or an unattended session must not do it); the last active
     * admin cannot (LAST_ADMIN).
     */
    async deleteAccount(user: User, meta: RequestMeta, proof: OwnerProof) {
      await assertOwnerPresent(user, proof, meta, DELETION);
      await guardLastAdmin(d.prisma, d.provider, user, true, (tx) => deleteUserRows(tx, user.id));
      await revokeUserSessions(d.prisma, user.id);
      await d.tokens.revokeAll(user.id);
      await d.audit.record('account.deleted', { userId: user.id, ...meta });
    },
  };
  return flows;
}

export type AccountFlows = ReturnType<typeof createAccountFlows>;
