import { SMTPServer } from 'smtp-server';
import { simpleParser } from 'mailparser';
import type { AddressInfo } from 'node:net';

export type ReceivedMail = { to: string; subject: string; text: string; html: string; link?: string };

/** A real SMTP server in the test process; Latch sends to it through nodemailer (SMTP_URL). */
export async function startSmtpSink() {
  const received: ReceivedMail[] = [];
  const waiters: (() => void)[] = [];
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    logger: false,
    onData(stream, _session, callback) {
      simpleParser(stream)
        .then((mail) => {
          const text = mail.text ?? '';
          const to = Array.isArray(mail.to) ? mail.to[0]?.text : mail.to?.text;
          received.push({ to: to ?? '', subject: mail.subject ?? '', text, html: typeof mail.html === 'string' ? mail.html : '', link: /https?:\/\/\S+/.exec(text)?.[0] });
          waiters.splice(0).forEach((wake) => wake());
          callback();
        })
        .catch(callback);
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.server.address() as AddressInfo;

  return {
    url: `smtp://127.0.0.1:${port}`,
    received,
    /** The next message to `to` (case-insensitive) that matches, waiting up to `ms`. */
    async waitFor(to: string, match: (m: ReceivedMail) => boolean = () => true, ms = 10_000): Promise<ReceivedMail> {
      const deadline = Date.now() + ms;
      const seen = new Set<ReceivedMail>();
      for (;;) {
        const found = received.find((m) => !seen.has(m) && m.to.toLowerCase().includes(to.toLowerCase()) && match(m));
        if (found) {
          received.splice(received.indexOf(found), 1);
          return found;
        }
        if (Date.now() > deadline) throw new Error(`no mail to ${to} within ${ms} ms (have: ${received.map((m) => `${m.to}: ${m.subject}`).join('; ')})`);
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, 200);
          waiters.push(() => {
            clearTimeout(timer);
            resolve();
          });
        });
      }
    },
    /** Mails to `to` received so far (and not yet taken by waitFor). */
    to: (to: string) => received.filter((m) => m.to.toLowerCase().includes(to.toLowerCase())),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

export type SmtpSink = Awaited<ReturnType<typeof startSmtpSink>>;
