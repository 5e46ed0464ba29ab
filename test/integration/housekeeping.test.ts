import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../support/server.js';

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer({ PURGE_INTERVAL: '1', AUDIT_RETENTION_DAYS: '30' });
});
afterAll(() => server?.stop());

const daysAgo = (days: number) => new Date(Date.now() - days * 24 * 3600_000);

describe('housekeeping on a running server', () => {
  it('deletes expired provider rows, spent throttle counters, emailed links expired over a day ago and audit events past AUDIT_RETENTION_DAYS, and keeps the rest', async () => {
    const { prisma } = server;
    const row = (id: string, expiresAt: Date) => ({ model: 'AccessToken', id, payload: { jti: id }, expiresAt });
    await prisma.oidcPayload.createMany({ data: [row('expired', daysAgo(1)), row('live', new Date(Date.now() + 3600_000))] });
    // More than one purge batch of old events, so the batches are seen to continue.
    await prisma.auditEvent.createMany({
      data: Array.from({ length: 1_100 }, (_, i) => ({ id: `old-${i}`, event: 'login.success', createdAt: daysAgo(31) })),
    });
    await prisma.auditEvent.createMany({ data: [{ id: 'recent', event: 'login.success', createdAt: daysAgo(29) }] });
    // Throttle counters: one whose window has passed, one still counting.
    await prisma.rateLimiterFlexible.createMany({ data: [{ key: 'login-ip:spent', points: 3, expire: daysAgo(1) }, { key: 'login-ip:counting', points: 3, expire: new Date(Date.now() + 3600_000) }] });

    // Emailed links: more than one batch that expired two days ago; one that expired an hour ago
    // (a purge leaves a link for a day after it expires) and one still valid.
    const link = (tokenHash: string, expiresAt: Date) => ({ tokenHash, purpose: 'magic-link', userId: 'u1', email: 'a@example.com', expiresAt });
    await prisma.emailToken.createMany({
      data: [...Array.from({ length: 150 }, (_, i) => link(`old-${i}`, daysAgo(2))), link('expired-recently', new Date(Date.now() - 3600_000)), link('valid', new Date(Date.now() + 3600_000))],
    });

    const deadline = Date.now() + 10_000;
    const left = async () =>
      (await prisma.auditEvent.count({ where: { id: { startsWith: 'old-' } } })) +
      (await prisma.oidcPayload.count({ where: { id: 'expired' } })) +
      (await prisma.rateLimiterFlexible.count({ where: { key: 'login-ip:spent' } })) +
      (await prisma.emailToken.count({ where: { tokenHash: { startsWith: 'old-' } } }));
    while (Date.now() < deadline && (await left()) > 0) {
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    expect(await prisma.auditEvent.count({ where: { id: { startsWith: 'old-' } } })).toBe(0);
    expect(await prisma.oidcPayload.count({ where: { id: 'expired' } })).toBe(0);
    expect(await prisma.auditEvent.findUnique({ where: { id: 'recent' } })).not.toBeNull();
    expect(await prisma.oidcPayload.findUnique({ where: { model_id: { model: 'AccessToken', id: 'live' } } })).not.toBeNull();
    expect(await prisma.rateLimiterFlexible.findUnique({ where: { key: 'login-ip:spent' } })).toBeNull();
    expect(await prisma.rateLimiterFlexible.findUnique({ where: { key: 'login-ip:counting' } })).not.toBeNull();
    expect(await prisma.emailToken.count({ where: { tokenHash: { startsWith: 'old-' } } })).toBe(0);
    expect((await prisma.emailToken.findMany({ orderBy: { tokenHash: 'asc' } })).map((t) => t.tokenHash)).toEqual(['expired-recently', 'valid']);
  });
});
