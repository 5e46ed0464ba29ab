import { describe, expect, it } from 'vitest';
import { renderActionMail } from '../../src/mail/messages.js';

const ctx = { productName: "Tom & Jerry's <ID>", supportEmail: 'help@example.com' };
const render = (ttlSeconds: number) => renderActionMail('magic-link', 'ada@example.com', { url: 'https://id.example/magic-link?token=a%2Bb', ttlSeconds }, ctx);

describe('emailed action messages', () => {
  it('writes the plain-text part as text, and escapes the HTML part', async () => {
    const mail = await render(900);
    expect(mail.text).toContain("Tom & Jerry's <ID>");
    expect(mail.text).not.toContain('&amp;');
    expect(mail.html).toContain('Tom &amp; Jerry&#39;s &lt;ID&gt;');
    expect(mail.text).toContain('https://id.example/magic-link?token=a%2Bb');
  });

  it('says how long the link lives, never longer than it does', async () => {
    const expiry = async (ttl: number) => /expires in ([^.]+)\./.exec((await render(ttl)).text)![1];
    expect(await expiry(1)).toBe('1 second');
    expect(await expiry(45)).toBe('45 seconds');
    expect(await expiry(60)).toBe('1 minute');
    expect(await expiry(90)).toBe('1 minute');
    expect(await expiry(900)).toBe('15 minutes');
    expect(await expiry(3600)).toBe('1 hour');
    expect(await expiry(86400)).toBe('24 hours');
  });
});
