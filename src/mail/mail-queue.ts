import type { Logger } from 'pino';
import type { Db } from '../db/prisma.js';
import { findThenDelete, purgeInBatches } from '../db/purge.js';
import type { Mail, Mailer } from './mailer.js';

const MAX_ATTEMPTS = 8;
/** How long the envelope of a delivered or abandoned message is kept, for an operator to look up. */
export const MAIL_RETENTION_DAYS = 30;
// 30 s, 1 min, 2 min, ... about 1 h at the last attempt.
const backoffMs = (attempt: number) => Math.min(30_000 * 2 ** (attempt - 1), 3600_000);
// How long a pass holds a message it is sending: longer than a send can take (SMTP_TIMEOUT bounds
// each of its waits, at most 60 s), so no other pass sends it meanwhile.
const CLAIM_MS = 5 * 60_000;

/**
 * Mail is stored first and then sent; a failed send is logged and retried with backoff by a
 * periodic pass (any process may run it; rows are claimed before sending).
 */
export function createMailQueue(prisma: Db, mailer: Mailer, logger: Logger) {
  async function attempt(id: string) {
    // Claim the message by pushing its next attempt out; a concurrent pass then skips it.
    const claimed = await prisma.mailMessage.updateMany({
      where: { id, sentAt: null, failedAt: null, nextAttemptAt: { lte: new Date() } },
      data: { nextAttemptAt: new Date(Date.now() + CLAIM_MS), attempts: { increment: 1 } },
    });
    if (claimed.count !== 1) return;
    const message = await prisma.mailMessage.findUniqueOrThrow({ where: { id } });
    try {
      await mailer.send({ to: message.to, subject: message.subject, text: message.text ?? '', html: message.html ?? '' });
    } catch (err) {
      const gaveUp = message.attempts >= MAX_ATTEMPTS;
      logger.error({ err, to: message.to, subject: message.subject, attempt: message.attempts, gaveUp }, 'sending mail failed');
      await prisma.mailMessage.update({
        where: { id },
        data: {
          lastError: String((err as Error).message).slice(0, 500),
          nextAttemptAt: new Date(Date.now() + backoffMs(message.attempts)),
          // Given up: its links will not reach anyone, so they are not kept either.
          ...(gaveUp ? { failedAt: new Date(), text: null, html: null } : {}),
        },
      });
      return;
    }
    // Delivered (outside the try: a failure to record it must not schedule another send). The
    // bodies carry live links: keep only the envelope.
    await prisma.mailMessage.update({ where: { id }, data: { sentAt: new Date(), text: null, html: null, lastError: null } });
  }

  return {
    /**
     * Stores the message, then sends it in the background: the caller answers without waiting for
     * the mail server, so requests for known and unknown addresses take the same time.
     */
    async enqueue(mail: Mail) {
      const { id } = await prisma.mailMessage.create({ data: mail });
      attempt(id).catch((err) => logger.error({ err }, 'mail attempt failed; the retry pass will pick it up'));
    },
    /**
     * Deletes the envelopes (recipient, subject, outcome) of messages delivered or given up before
     * `before`, in paced batches; housekeeping calls it with MAIL_RETENTION_DAYS.
     */
    purgeFinishedBefore: (before: Date, signal?: AbortSignal) =>
      purgeInBatches(
        findThenDelete(
          async (take) =>
            (await prisma.mailMessage.findMany({ where: { OR: [{ sentAt: { lt: before } }, { sentAt: null, failedAt: { lt: before } }] }, select: { id: true }, take })).map((m) => m.id),
          (ids) => prisma.mailMessage.deleteMany({ where: { id: { in: ids } } }),
        ),
        { signal },
      ),
    /** Retries due messages; called periodically. */
    async retryDue() {
      const due = await prisma.mailMessage.findMany({
        where: { sentAt: null, failedAt: null, nextAttemptAt: { lte: new Date() } },
        select: { id: true },
        take: 50,
      });
      for (const { id } of due) await attempt(id);
      return due.length;
    },
  };
}

export type MailQueue = ReturnType<typeof createMailQueue>;
