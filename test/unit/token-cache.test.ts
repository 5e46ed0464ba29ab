import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate } from '../../src/db/migrate.js';
import { createPrisma, type Db } from '../../src/db/prisma.js';
import { createOidcStore, type OidcStore, type PayloadColumns, type RowKey } from '../../src/db/oidc-store.js';
import { cacheTokenReads } from '../../src/db/token-cache.js';
import { invalidateOnWrite } from '../../src/db/invalidate-on-write.js';
import { providerOf } from '../../src/db/url.js';
import { createTestDatabase } from '../support/database.js';

let raw: OidcStore;
let plain: Db;
let drop: () => Promise<void>;
let reads = 0;
beforeAll(async () => {
  const db = await createTestDatabase();
  drop = db.drop;
  await migrate(db.url);
  raw = await createOidcStore(providerOf(db.url), db.url, { poolSize: 2 });
  plain = await createPrisma({ url: db.url, poolSize: 2 });
});
afterAll(async () => {
  await plain?.$disconnect();
  await raw?.close();
  await drop?.();
});

/** A cache over the store that counts the rows it asks the store for. */
const cacheOver = (ttlMs = 60_000) => cacheTokenReads({ ...raw, findMany: (keys) => ((reads += keys.length), raw.findMany(keys)) }, ttlMs);
function countReads() {
  const start = reads;
  return () => reads - start;
}

let n = 0;
const columns = (c: Partial<PayloadColumns> = {}): PayloadColumns => ({
  grantId: null,
  uid: null,
  userCode: null,
  accountId: 'acc-1',
  clientId: 'client-1',
  expiresAt: new Date(Date.now() + 600_000),
  consumedAt: null,
  ...c,
});
/** An access token with its grant, written straight to the store. */
async function issue(kind = 'AccessToken') {
  n += 1;
  const [token, grant] = [`tok-${Date.now()}-${n}`, `grant-${Date.now()}-${n}`];
  await raw.upsert('Grant', grant, JSON.stringify({ jti: grant, accountId: 'acc-1', clientId: 'client-1' }), columns());
  await raw.upsert(kind, token, JSON.stringify({ jti: token, grantId: grant, scope: 'openid' }), columns({ grantId: grant }));
  return { token, grant };
}
/** An access token with its grant and the session it was issued in, written straight to the store. */
async function issueInSession() {
  n += 1;
  const [token, grant, session, uid] = [`tok-${Date.now()}-${n}`, `grant-${Date.now()}-${n}`, `sess-${Date.now()}-${n}`, `uid-${Date.now()}-${n}`];
  await raw.upsert('Grant', grant, JSON.stringify({ jti: grant, accountId: 'acc-1', clientId: 'client-1' }), columns());
  await raw.upsert('Session', session, JSON.stringify({ jti: session, uid, accountId: 'acc-1' }), columns({ uid }));
  await raw.upsert('AccessToken', token, JSON.stringify({ jti: token, grantId: grant, sessionUid: uid }), columns({ grantId: grant }));
  return { token, grant, session, uid };
}
/** The three lookups oidc-provider makes for one presented token. */
const presented = (token: string): RowKey[] => ['AccessToken', 'ClientCredentials', 'RefreshToken'].map((model) => ({ model, id: token }));

describe('the token cache', () => {
  it('answers a token presented again, as every kind and with its grant, without reading the store', async () => {
    const cache = cacheOver();
    const { token, grant } = await issue();
    const readsSince = countReads();
    const first = await cache.store.findMany(presented(token));
    const second = await cache.store.findMany(presented(token));
    expect(readsSince()).toBe(3);
    expect(second).toEqual(first);
    expect(second[0]).toMatchObject({ payload: { jti: token, scope: 'openid' }, consumed: null, grant: { payload: { jti: grant } } });
    expect(second.slice(1)).toEqual([undefined, undefined]);
    // Each read gets objects of its own: a change to one does not reach the next.
    (second[0]!.payload as { scope: string }).scope = 'changed';
    expect((await cache.store.findMany(presented(token)))[0]!.payload.scope).toBe('openid');
  });

  it('reads a token again once it is revoked, destroyed or its grant changes in this process', async () => {
    const cache = cacheOver();
    const revoked = await issue();
    await cache.store.findMany(presented(revoked.token));
    await cache.store.revokeByGrantId(revoked.grant, ['AccessToken']);
    expect((await cache.store.findMany(presented(revoked.token)))[0]).toBeUndefined();

    const destroyed = await issue('ClientCredentials');
    expect((await cache.store.findMany(presented(destroyed.token)))[1]).toBeDefined();
    await cache.store.writeBatch([{ kind: 'destroy', model: 'ClientCredentials', id: destroyed.token }]);
    expect((await cache.store.findMany(presented(destroyed.token)))[1]).toBeUndefined();

    const grantGone = await issue();
    await cache.store.findMany(presented(grantGone.token));
    await cache.store.destroy('Grant', grantGone.grant);
    expect((await cache.store.findMany(presented(grantGone.token)))[0]).toMatchObject({ grant: null });
  });

  it('answers a token with the session it is checked against, without reading the store', async () => {
    const cache = cacheOver();
    const { token, session, uid } = await issueInSession();
    await cache.store.findMany(presented(token));
    const readsSince = countReads();
    const [found] = await cache.store.findMany(presented(token));
    expect(readsSince()).toBe(0);
    expect(found).toMatchObject({ payload: { sessionUid: uid }, session: { payload: { jti: session, uid }, consumed: null } });
  });

  it('reads again, once its session or grant is written or destroyed here, every token checked against it, and only those', async () => {
    const cache = cacheOver();
    const [signedOut, regranted, other] = [await issueInSession(), await issueInSession(), await issueInSession()];
    for (const t of [signedOut, regranted, other]) await cache.store.findMany(presented(t.token));
    // Signing out ends the session; a consent rewrites the grant.
    await cache.store.writeBatch([{ kind: 'destroy', model: 'Session', id: signedOut.session }]);
    await cache.store.upsert('Grant', regranted.grant, JSON.stringify({ jti: regranted.grant, accountId: 'acc-1', scope: 'openid email' }), columns());
    const readsSince = countReads();
    const [ended] = await cache.store.findMany(presented(signedOut.token));
    const [changed] = await cache.store.findMany(presented(regranted.token));
    await cache.store.findMany(presented(other.token));
    expect(readsSince()).toBe(6);
    expect(ended).toMatchObject({ session: null });
    expect(changed).toMatchObject({ grant: { payload: { scope: 'openid email' } } });
    // A token whose session is gone is kept without it: its session is read each time.
    expect((await cache.store.findMany(presented(signedOut.token)))[0]!.session).toBeUndefined();
  });

  it('drops everything when this process deletes provider rows through Prisma', async () => {
    const cache = cacheOver();
    const prisma = invalidateOnWrite(plain, { oidcPayload: cache.clear });
    const { token } = await issue();
    await cache.store.findMany(presented(token));
    await prisma.oidcPayload.deleteMany({ where: { accountId: 'acc-1', model: 'AccessToken', id: token } });
    expect((await cache.store.findMany(presented(token)))[0]).toBeUndefined();
  });

  it('serves another process’s revocation once the bound has passed', async () => {
    const cache = cacheOver(300);
    const { token } = await issue();
    await cache.store.findMany(presented(token));
    // Another process: straight to the store, not through this cache.
    await raw.destroy('AccessToken', token);
    expect((await cache.store.findMany(presented(token)))[0]).toBeDefined();
    await new Promise((r) => setTimeout(r, 350));
    expect((await cache.store.findMany(presented(token)))[0]).toBeUndefined();
  });

  it('counts the bound from when a read began, however long it took to answer', async () => {
    const { token } = await issue();
    // A slow answer (a busy database or event loop): what it returns is as old as its start.
    const cache = cacheTokenReads(
      {
        ...raw,
        async findMany(keys) {
          const rows = await raw.findMany(keys);
          await new Promise((r) => setTimeout(r, 200));
          return rows;
        },
      },
      300,
    );
    expect((await cache.store.findMany(presented(token)))[0]).toBeDefined();
    await raw.destroy('AccessToken', token);
    await new Promise((r) => setTimeout(r, 150));
    expect((await cache.store.findMany(presented(token)))[0]).toBeUndefined();
  });

  it('does not keep what a read racing a revocation returned', async () => {
    const { token } = await issue();
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const cache = cacheTokenReads({
      ...raw,
      async findMany(keys) {
        const rows = await raw.findMany(keys);
        await gate;
        return rows;
      },
    });
    const racing = cache.store.findMany(presented(token));
    await cache.store.destroy('AccessToken', token);
    release();
    expect((await racing)[0]).toBeDefined();
    expect((await cache.store.findMany(presented(token)))[0]).toBeUndefined();
  });

  it('does not keep refresh tokens, a token whose grant is gone, or rows of other models', async () => {
    const cache = cacheOver();
    const refresh = await issue('RefreshToken');
    const orphan = await issue();
    await raw.destroy('Grant', orphan.grant);
    await raw.upsert('Session', 'sess-1', JSON.stringify({ jti: 'sess-1', uid: 'u-1' }), columns({ uid: 'u-1' }));
    const keys = [...presented(refresh.token), ...presented(orphan.token), { model: 'Session', id: 'sess-1' }];
    await cache.store.findMany(keys);
    const readsSince = countReads();
    await cache.store.findMany(keys);
    expect(readsSince()).toBe(keys.length);
  });

  it('holds at most its limit, and lets go of entries past the bound as new ones come', async () => {
    const cache = cacheTokenReads(raw, 200, 2);
    const tokens = [await issue(), await issue(), await issue()];
    for (const { token } of tokens) await cache.store.findMany(presented(token));
    expect(cache.size()).toBe(2);
    await new Promise((r) => setTimeout(r, 250));
    await cache.store.findMany(presented((await issue()).token));
    expect(cache.size()).toBe(1);
  });
});
