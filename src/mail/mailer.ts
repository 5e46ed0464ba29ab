import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Transporter } from 'nodemailer';
import type { Logger } from 'pino';

export type Mail = { to: string; subject: string; text: string; html: string };
export type Mailer = { send(mail: Mail): Promise<void>; close(): void };

/**
 * SMTP through nodemailer when SMTP_URL is set. Otherwise an outbox folder: each message is
 * written as an .eml file (nodemailer's stream transport) and its first link is logged, so a
 * fresh install works with no mail server. nodemailer is loaded with the first message, not at
 * start: it is about 40-70 ms and 4 MB of a start here, and many servers send no mail for a while.
 */
export function createMailer(options: { smtpUrl?: string; smtpTimeoutSeconds?: number; from: string; outboxDir: string }, logger: Logger): Mailer {
  let transport: Promise<Transporter> | undefined;
  // nodemailer waits up to 10 minutes for a silent server by default: longer than the queue's
  // claim on a message, after which another pass would send it again.
  const timeoutMs = (options.smtpTimeoutSeconds ?? 30) * 1000;
  const open = () =>
    (transport ??= import('nodemailer').then(({ default: nodemailer }) =>
      options.smtpUrl
        ? nodemailer.createTransport({ url: options.smtpUrl, connectionTimeout: timeoutMs, greetingTimeout: timeoutMs, socketTimeout: timeoutMs })
        : nodemailer.createTransport({ streamTransport: true, buffer: true, newline: 'unix' }),
    ));

  return {
    async send(mail) {
      const info = await (await open()).sendMail({ from: options.from, ...mail });
      if (options.smtpUrl) return;
      mkdirSync(options.outboxDir, { recursive: true });
      const file = join(options.outboxDir, `${new Date().toISOString().replace(/[:.]/g, '-')}-${info.messageId.replace(/[^\w.-]/g, '')}.eml`);
      writeFileSync(file, (info as unknown as { message: Buffer }).message);
      const link = /https?:\/\/\S+/.exec(mail.text)?.[0];
      logger.info({ to: mail.to, subject: mail.subject, file, link }, 'mail written to outbox (SMTP_URL not set)');
    },
    close: () => void transport?.then((t) => t.close()),
  };
}
