import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SMTPServer } from 'smtp-server';
import type { AddressInfo } from 'node:net';
import { startTestServer, type TestServer } from '../support/server.js';

/** A real SMTP server that hands each message's recipient to `answer`, which says what to reply (or, returning false, never replies). */
function smtpServer(answer: (to: string) => Error | undefined | false) {
  return new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    logger: false,
    onData(stream, session, callback) {
      stream.resume();
      stream.on('end', () => {
        const reply = answer(session.envelope.rcptTo[0]!.address);
        if (reply !== false) callback(reply);
      });
    },
  });
}

// One that refuses the first deliveries with a temporary error, then accepts.
let refuse = true;
/**
 * The queued message to `to` once its first attempt failed: the link is made after the answer and
 * its first attempt runs in the background (up to 5 s).
 */
async function afterFirstFailure(server: TestServer, to: string) {
  const find = () => server.prisma.mailMessage.findFirst({ where: { to } });
  let pending = await find();
  for (let i = 0; i < 50 && !pending?.lastError; i += 1) {
    await new Promise((r) => setTimeout(r, 100));
    pending = await find();
  }
  return pending;
}

const delivered: string[] = [];
const smtp = smtpServer((to) => {
  if (refuse) return Object.assign(new Error('mailbox busy, try later'), { responseCode: 451 });
  delivered.push(to);
  return undefined;
});
let server: TestServer;

beforeAll(async () => {
  await new Promise<void>((resolve) => smtp.listen(0, '127.0.0.1', resolve));
  const { port } = smtp.server.address() as AddressInfo;
  server = await startTestServer({ SMTP_URL: `smtp://127.0.0.1:${port}` });
  await server.users.create({ email: 'mia@example.com', password: 'violet kettle orbit 42' });
});
afterAll(async () => {
  await server?.stop();
  await new Promise<void>((resolve) => smtp.close(() => resolve()));
});

describe('mail delivery', () => {
  it('keeps a message the mail server refused and delivers it on a later attempt', async () => {
    const res = await fetch(`${server.url}/api/auth/forgot-password`, {
      method: 'POST',
      body: JSON.stringify({ email: 'mia@example.com' }),
      headers: { 'content-type': 'application/json' },
    });
    expect(res.status).toBe(202);

    const pending = await afterFirstFailure(server, 'mia@example.com');
    if (!pending) throw new Error('no mail was queued');
    expect(pending).toMatchObject({ sentAt: null, attempts: 1 });
    expect(pending.lastError).toContain('mailbox busy');
    expect(pending.text).toContain('/reset-password?token=');

    refuse = false;
    await server.prisma.mailMessage.update({ where: { id: pending.id }, data: { nextAttemptAt: new Date() } });
    expect(await server.mail.retryDue()).toBe(1);
    expect(delivered).toEqual(['mia@example.com']);
    const sent = await server.prisma.mailMessage.findUniqueOrThrow({ where: { id: pending.id } });
    expect(sent.sentAt).not.toBeNull();
    // Delivered bodies carry live links; they are not kept.
    expect(sent.text).toBeNull();
  });

  it('gives up after the last attempt, keeping the envelope but not the links', async () => {
    refuse = true;
    const { id } = await server.prisma.mailMessage.create({ data: { to: 'gone@example.com', subject: 'Reset', text: 'https://x/reset-password?token=t', html: '<a>t</a>', attempts: 7 } });
    expect(await server.mail.retryDue()).toBe(1);
    const abandoned = await server.prisma.mailMessage.findUniqueOrThrow({ where: { id } });
    expect(abandoned).toMatchObject({ attempts: 8, sentAt: null, text: null, html: null, to: 'gone@example.com' });
    expect(abandoned.failedAt).not.toBeNull();
    expect(abandoned.lastError).toContain('mailbox busy');
  });

  it('purges the envelopes of messages finished before the retention bound, and only those', async () => {
    const old = new Date(Date.now() - 40 * 24 * 3600_000);
    const make = (to: string, data: { sentAt?: Date; failedAt?: Date }) => server.prisma.mailMessage.create({ data: { to, subject: 's', ...data } });
    await make('old-sent@example.com', { sentAt: old });
    await make('old-failed@example.com', { failedAt: old });
    await make('new-sent@example.com', { sentAt: new Date() });
    await make('pending@example.com', {});
    expect(await server.mail.purgeFinishedBefore(new Date(Date.now() - 30 * 24 * 3600_000))).toBe(2);
    const left = (await server.prisma.mailMessage.findMany({ select: { to: true } })).map((m) => m.to);
    expect(left).toEqual(expect.arrayContaining(['new-sent@example.com', 'pending@example.com']));
    expect(left).not.toContain('old-sent@example.com');
    expect(left).not.toContain('old-failed@example.com');
  });
});

describe('a mail server that stops answering', () => {
  it('gives the send up after SMTP_TIMEOUT and delivers the message once, on a later attempt', async () => {
    // Takes the message, then never answers it, the first time.
    let stall = true;
    const received: string[] = [];
    const silent = smtpServer((to) => {
      received.push(to);
      return stall ? false : undefined;
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const { port } = silent.server.address() as AddressInfo;
    const latch = await startTestServer({ SMTP_URL: `smtp://127.0.0.1:${port}`, SMTP_TIMEOUT: '1' });
    try {
      await latch.users.create({ email: 'sam@example.com', password: 'violet kettle orbit 42' });
      const res = await fetch(`${latch.url}/api/auth/forgot-password`, { method: 'POST', body: JSON.stringify({ email: 'sam@example.com' }), headers: { 'content-type': 'application/json' } });
      expect(res.status).toBe(202);
      const pending = await afterFirstFailure(latch, 'sam@example.com');
      // Abandoned within the timeout, long before the queue's claim on it ends: no other pass has sent it.
      expect(pending).toMatchObject({ sentAt: null, attempts: 1 });
      expect(pending!.lastError).toMatch(/time/i);
      expect(received).toEqual(['sam@example.com']);

      stall = false;
      await latch.prisma.mailMessage.update({ where: { id: pending!.id }, data: { nextAttemptAt: new Date() } });
      expect(await latch.mail.retryDue()).toBe(1);
      expect(received).toEqual(['sam@example.com', 'sam@example.com']);
      expect(await latch.prisma.mailMessage.findUniqueOrThrow({ where: { id: pending!.id } })).toMatchObject({ attempts: 2, sentAt: expect.any(Date) });
    } finally {
      await latch.stop();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  });
});
