import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTestServer, type TestServer } from '../support/server.js';

// Without SMTP_URL, mail goes to an outbox folder so a fresh install works with no mail server.
const outbox = mkdtempSync(join(tmpdir(), 'latch-outbox-'));
let server: TestServer;

beforeAll(async () => {
  server = await startTestServer({ OUTBOX_DIR: outbox, PRODUCT_NAME: 'Acme ID', SUPPORT_EMAIL: 'help@acme.example' });
  await server.users.create({ email: 'olu@example.com', password: 'violet kettle orbit 42' });
});
afterAll(async () => {
  await server?.stop();
  rmSync(outbox, { recursive: true, force: true });
});

describe('outbox mail', () => {
  it('writes each message as an .eml file with the product name, the link, the expiry and whom to contact', async () => {
    const res = await fetch(`${server.url}/api/auth/magic-link`, {
      method: 'POST',
      body: JSON.stringify({ email: 'olu@example.com' }),
      headers: { 'content-type': 'application/json' },
    });
    expect(res.status).toBe(202);
    let files: string[] = [];
    for (let i = 0; i < 50 && files.length === 0; i += 1) {
      await new Promise((r) => setTimeout(r, 100));
      files = readdirSync(outbox).filter((f) => f.endsWith('.eml'));
    }
    expect(files).toHaveLength(1);
    const eml = readFileSync(join(outbox, files[0]!), 'utf8');
    expect(eml).toContain('To: olu@example.com');
    expect(eml).toContain('Subject: Your Acme ID sign-in link');
    expect(eml).toMatch(/\/magic-link\?token=/);
    expect(eml).toContain('expires in 15 minutes');
    expect(eml).toContain('help@acme.example');
    expect(eml).toContain('Content-Type: text/html');
  });
});
