import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../support/server.js';
import { startSmtpSink, type SmtpSink } from '../support/smtp-sink.js';

let server: TestServer;
let smtp: SmtpSink;

beforeAll(async () => {
  smtp = await startSmtpSink();
  server = await startTestServer({ SMTP_URL: smtp.url, EMAIL_MAX_PER_ADDRESS: '2', EMAIL_MAX_PER_IP: '5' });
  await server.users.create({ email: 'max@example.com', password: 'violet kettle orbit 42' });
});
afterAll(async () => {
  await server?.stop();
  await smtp?.close();
});

const post = (path: string, email: string) =>
  fetch(`${server.url}/api/auth/${path}`, { method: 'POST', body: JSON.stringify({ email }), headers: { 'content-type': 'application/json' } });

describe('mail-sending endpoints are throttled', () => {
  it('per address, known or not, with the same answers', async () => {
    for (const email of ['max@example.com', 'nobody@example.com']) {
      expect((await post('forgot-password', email)).status).toBe(202);
      expect((await post('forgot-password', email)).status).toBe(202);
      const third = await post('forgot-password', email);
      expect(third.status).toBe(429);
      expect(Number(third.headers.get('retry-after'))).toBeGreaterThan(0);
      expect((await third.json()).code).toBe('TOO_MANY_REQUESTS');
    }
    // Only the allowed requests sent mail.
    await smtp.waitFor('max@example.com');
    await smtp.waitFor('max@example.com');
    await new Promise((r) => setTimeout(r, 300));
    expect(smtp.to('max@example.com')).toHaveLength(0);
  });

  it('for confirmation emails too: resending and changing the address', async () => {
    await server.users.create({ email: 'vic@example.com', password: 'violet kettle orbit 42' });
    const login = await fetch(`${server.url}/api/auth/login`, {
      method: 'POST',
      body: JSON.stringify({ username: 'vic@example.com', password: 'violet kettle orbit 42' }),
      headers: { 'content-type': 'application/json' },
    });
    const auth = { authorization: `Bearer ${(await login.json()).access_token}`, 'content-type': 'application/json' };
    const resend = () => fetch(`${server.url}/api/me/verification`, { method: 'POST', headers: auth });
    const first = await resend();
    expect(first.status).toBe(202);
    expect(await first.json()).toEqual({ message: 'We sent a confirmation link to vic@example.com.' });
    expect((await resend()).status).toBe(202);
    expect((await resend()).status).toBe(429);
    await smtp.waitFor('vic@example.com');
    await smtp.waitFor('vic@example.com');
    // Address changes count per IP too (limit 5 here, 3 used above); a throttled change changes nothing.
    const move = (email: string) => fetch(`${server.url}/api/me`, { method: 'PATCH', headers: auth, body: JSON.stringify({ email, currentPassword: 'violet kettle orbit 42' }) });
    expect((await move('vic2@example.com')).status).toBe(200);
    expect((await move('vic3@example.com')).status).toBe(200);
    const refused = await move('vic4@example.com');
    expect(refused.status).toBe(429);
    const me = await (await fetch(`${server.url}/api/me`, { headers: auth })).json();
    expect(me).toMatchObject({ email: 'vic@example.com', pendingEmail: 'vic3@example.com' });
  });

  it('per IP across addresses, and separately for magic links', async () => {
    expect((await post('magic-link', 'a@example.com')).status).toBe(202);
    for (const email of ['b@example.com', 'c@example.com', 'd@example.com', 'e@example.com']) {
      expect((await post('magic-link', email)).status).toBe(202);
    }
    expect((await post('magic-link', 'f@example.com')).status).toBe(429);
  });
});
