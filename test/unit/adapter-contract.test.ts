import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Adapter } from 'oidc-provider';
import { createPrisma, type Db } from '../../src/db/prisma.js';
import { migrate } from '../../src/db/migrate.js';
import { createClientCache, createOidcAdapter, purgeExpired } from '../../src/oidc/adapter.js';
import { createOidcStore, type OidcStore, type StoreWrite } from '../../src/db/oidc-store.js';
import { providerOf } from '../../src/db/url.js';
import { createUnitOfWork, type UnitOfWork } from '../../src/db/unit-of-work.js';
import type { Context } from 'koa';
import { RateLimiterPrisma } from 'rate-limiter-flexible';
import { createTestDatabase } from '../support/database.js';
import { purgeExpiredCounters } from '../../src/auth/throttle-counters.js';

// How long a consumed code or token is kept (CONSUMED_TOKEN_RETENTION), seconds.
const RETENTION = 3600;

type AdapterFactory = (model: string) => Adapter;

// oidc-provider's own in-memory adapter is the reference for the contract.
const memoryAdapterModule = 'oidc-provider/lib/adapters/memory_adapter.js';
const { createMemoryAdapter } = (await import(memoryAdapterModule)) as { createMemoryAdapter: () => AdapterFactory };

let prisma: Db;
let store: OidcStore;
let drop: () => Promise<void>;
let dbUrl: string;
beforeAll(async () => {
  const db = await createTestDatabase();
  drop = db.drop;
  dbUrl = db.url;
  await migrate(db.url);
  prisma = await createPrisma({ url: db.url, poolSize: 2 });
  store = await createOidcStore(providerOf(db.url), db.url, { poolSize: 2 });
});
afterAll(async () => {
  await prisma?.$disconnect();
  await store?.close();
  await drop?.();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
let n = 0;
const id = () => `id-${Date.now()}-${(n += 1)}`;

const implementations: [string, () => AdapterFactory][] = [
  ['oidc-provider memory adapter', () => createMemoryAdapter()],
  ['Latch adapter (raw driver store)', () => createOidcAdapter(store, createClientCache(store), RETENTION)],
  ['Latch adapter, each call a request with its unit of work', () => perRequest(createUnitOfWork(store))],
];

/** As the provider runs: every call in a request whose writes are applied when it ends. */
function perRequest(uow: UnitOfWork): AdapterFactory {
  const factory = createOidcAdapter(uow.store, createClientCache(uow.store), RETENTION);
  return (model) => {
    const adapter = factory(model) as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>;
    return new Proxy(adapter, {
      get: (target, prop: string) => async (...args: unknown[]) => {
        let out: unknown;
        await uow.middleware({ status: 200 } as Context, async () => {
          out = await target[prop]!(...args);
        });
        return out;
      },
    }) as unknown as Adapter;
  };
}

describe.each(implementations)('%s', (_name, make) => {
  it('stores, finds and overwrites a payload', async () => {
    const adapter = make()('AccessToken');
    const key = id();
    expect(await adapter.find(key)).toBeUndefined();
    await adapter.upsert(key, { jti: key, accountId: 'u1', kind: 'AccessToken' }, 60);
    expect(await adapter.find(key)).toMatchObject({ jti: key, accountId: 'u1' });
    await adapter.upsert(key, { jti: key, accountId: 'u2', kind: 'AccessToken' }, 60);
    expect(await adapter.find(key)).toMatchObject({ accountId: 'u2' });
  });

  it('keeps models apart', async () => {
    const factory = make();
    const key = id();
    await factory('AccessToken').upsert(key, { jti: key }, 60);
    expect(await factory('RefreshToken').find(key)).toBeUndefined();
  });

  it('forgets a payload once it expires', async () => {
    const adapter = make()('AuthorizationCode');
    const key = id();
    await adapter.upsert(key, { jti: key }, 1);
    expect(await adapter.find(key)).toBeDefined();
    await sleep(1100);
    expect(await adapter.find(key)).toBeUndefined();
  });

  it('marks a payload consumed', async () => {
    const adapter = make()('AuthorizationCode');
    const key = id();
    await adapter.upsert(key, { jti: key, grantId: 'g' }, 60);
    await adapter.consume(key);
    expect((await adapter.find(key))?.consumed).toBeTruthy();
  });

  it('destroys a payload, and destroying twice is harmless', async () => {
    const adapter = make()('Session');
    const key = id();
    await adapter.upsert(key, { jti: key, uid: `uid-${key}` }, 60);
    await adapter.destroy(key);
    await adapter.destroy(key);
    expect(await adapter.find(key)).toBeUndefined();
  });

  it('finds sessions by uid and device codes by user code', async () => {
    const factory = make();
    const key = id();
    await factory('Session').upsert(key, { jti: key, uid: `uid-${key}` }, 60);
    expect(await factory('Session').findByUid(`uid-${key}`)).toMatchObject({ jti: key });
    expect(await factory('Session').findByUid('unknown')).toBeUndefined();
    await factory('DeviceCode').upsert(key, { jti: key, userCode: `UC-${key}`, grantId: 'g' }, 60);
    expect(await factory('DeviceCode').findByUserCode(`UC-${key}`)).toMatchObject({ jti: key });
  });

  it('revokes every token of a grant, and only of that grant', async () => {
    const factory = make();
    const grantId = id();
    const [at, rt, code, other] = [id(), id(), id(), id()];
    await factory('AccessToken').upsert(at, { jti: at, grantId }, 60);
    await factory('RefreshToken').upsert(rt, { jti: rt, grantId }, 60);
    await factory('AuthorizationCode').upsert(code, { jti: code, grantId }, 60);
    await factory('AccessToken').upsert(other, { jti: other, grantId: `${grantId}-other` }, 60);
    await factory('AccessToken').revokeByGrantId(grantId);
    await factory('RefreshToken').revokeByGrantId(grantId);
    await factory('AuthorizationCode').revokeByGrantId(grantId);
    expect(await factory('AccessToken').find(at)).toBeUndefined();
    expect(await factory('RefreshToken').find(rt)).toBeUndefined();
    expect(await factory('AuthorizationCode').find(code)).toBeUndefined();
    expect(await factory('AccessToken').find(other)).toBeDefined();
  });
});

describe('purging', () => {
  it('deletes expired rows in batches and keeps live ones', async () => {
    const adapter = createOidcAdapter(store, createClientCache(store), RETENTION)('Interaction');
    const live = id();
    await adapter.upsert(live, { jti: live }, 3600);
    const expired = Array.from({ length: 7 }, id);
    for (const key of expired) await adapter.upsert(key, { jti: key }, 1);
    // Rows are purged a minute after they expire (clock tolerance): age them instead of waiting.
    await prisma.oidcPayload.updateMany({ where: { id: { in: expired } }, data: { expiresAt: new Date(Date.now() - 120_000) } });
    expect(await purgeExpired(store, { batchSize: 3 })).toBeGreaterThanOrEqual(7);
    expect(await prisma.oidcPayload.count({ where: { id: { in: expired } } })).toBe(0);
    expect(await adapter.find(live)).toBeDefined();
  });
});

describe('consumed rows and purging at scale', () => {
  it('purges more expired rows than one statement could list', async () => {
    const adapter = createOidcAdapter(store, createClientCache(store), RETENTION)('AccessToken');
    const keys = Array.from({ length: 1200 }, id);
    for (const key of keys) await adapter.upsert(key, { jti: key }, 1);
    await prisma.oidcPayload.updateMany({ where: { id: { in: keys.slice(0, 500) } }, data: { expiresAt: new Date(Date.now() - 120_000) } });
    await prisma.oidcPayload.updateMany({ where: { id: { in: keys.slice(500, 1000) } }, data: { expiresAt: new Date(Date.now() - 120_000) } });
    await prisma.oidcPayload.updateMany({ where: { id: { in: keys.slice(1000) } }, data: { expiresAt: new Date(Date.now() - 120_000) } });
    expect(await purgeExpired(store)).toBeGreaterThanOrEqual(1200);
    expect(await prisma.oidcPayload.count({ where: { model: 'AccessToken', id: { in: keys.slice(0, 500) } } })).toBe(0);
  });

  it('shares a backlog between processes purging at once, also on PostgreSQL: neither stops early', async () => {
    const other = await createOidcStore(providerOf(dbUrl), dbUrl, { poolSize: 2 });
    try {
      const past = new Date(Date.now() - 120_000);
      const prefix = `backlog-${Date.now()}-`;
      const keys = Array.from({ length: 3000 }, (_, i) => `${prefix}${i}`);
      await prisma.oidcPayload.createMany({ data: keys.map((key) => ({ model: 'AccessToken', id: key, payload: { jti: key }, expiresAt: past })) });
      const [mine, theirs] = await Promise.all([purgeExpired(store, { batchSize: 100 }), purgeExpired(other, { batchSize: 100 })]);
      expect(await prisma.oidcPayload.count({ where: { id: { startsWith: prefix } } })).toBe(0);
      expect(mine + theirs).toBeGreaterThanOrEqual(3000);
      expect(Math.min(mine, theirs)).toBeGreaterThanOrEqual(300);
    } finally {
      await other.close();
    }
  });

  it('keeps a consumed refresh token only for the retention period, then lets it go', async () => {
    const adapter = createOidcAdapter(store, createClientCache(store), 1)('RefreshToken');
    const key = id();
    await adapter.upsert(key, { jti: key, grantId: 'g-retained' }, 3600);
    await adapter.consume(key);
    // Still there, consumed: a replay now is recognised as one.
    expect((await adapter.find(key))?.consumed).toBeGreaterThan(0);
    const row = await prisma.oidcPayload.findUniqueOrThrow({ where: { model_id: { model: 'RefreshToken', id: key } } });
    expect(row.expiresAt!.getTime()).toBeLessThan(Date.now() + 2_000);
    await sleep(1_100);
    expect(await adapter.find(key)).toBeUndefined();
  });
});

describe('rows written by the store, read by Prisma (one table, two layers)', () => {
  it('agree on expiry, consumption and the indexed columns', async () => {
    const adapter = createOidcAdapter(store, createClientCache(store), RETENTION)('RefreshToken');
    const key = id();
    await adapter.upsert(key, { jti: key, grantId: 'g-1', accountId: 'acc-1', clientId: 'cl-1' }, 3600);
    await adapter.consume(key);
    const row = await prisma.oidcPayload.findUniqueOrThrow({ where: { model_id: { model: 'RefreshToken', id: key } } });
    expect(row).toMatchObject({ grantId: 'g-1', accountId: 'acc-1', clientId: 'cl-1', payload: { jti: key } });
    expect(Math.abs(row.expiresAt!.getTime() - (Date.now() + 3600_000))).toBeLessThan(5_000);
    expect(Math.abs(row.consumedAt!.getTime() - Date.now())).toBeLessThan(5_000);
    // And the other way: Prisma's expiry filter sees the store's timestamps as the store does.
    expect(await prisma.oidcPayload.count({ where: { id: key, expiresAt: { gt: new Date() } } })).toBe(1);
    expect((await adapter.find(key))?.consumed).toBeGreaterThan(Date.now() / 1000 - 10);
  });
});

describe('several rows in one read (findMany)', () => {
  it('returns each key’s row in order, with the grant and session it names', async () => {
    const adapter = createOidcAdapter(store, createClientCache(store), RETENTION);
    const [token, grant, session, orphan, expired, plain] = [id(), id(), id(), id(), id(), id()];
    const uid = `uid-${session}`;
    await adapter('Grant').upsert(grant, { jti: grant, accountId: 'acc-1' }, 600);
    await adapter('Session').upsert(session, { jti: session, uid, accountId: 'acc-1' }, 600);
    await adapter('AccessToken').upsert(token, { jti: token, grantId: grant, sessionUid: uid }, 600);
    // Names a grant and a session that do not exist.
    await adapter('RefreshToken').upsert(orphan, { jti: orphan, grantId: `gone-${grant}`, sessionUid: 'gone' }, 600);
    await adapter('AccessToken').upsert(expired, { jti: expired, grantId: grant }, 1);
    await adapter('ClientCredentials').upsert(plain, { jti: plain }, 600);
    await sleep(1100);

    const [found, missing, gone, late, bare, otherModel] = await store.findMany([
      { model: 'AccessToken', id: token },
      { model: 'AccessToken', id: `no-${token}` },
      { model: 'RefreshToken', id: orphan },
      { model: 'AccessToken', id: expired },
      { model: 'ClientCredentials', id: plain },
      { model: 'ClientCredentials', id: token },
    ]);
    expect(found).toMatchObject({ payload: { jti: token }, consumed: null, grant: { payload: { jti: grant } }, session: { payload: { jti: session, uid } } });
    expect(missing).toBeUndefined();
    expect(gone).toMatchObject({ payload: { jti: orphan }, grant: null, session: null });
    expect(late).toBeUndefined();
    expect(bare).toEqual({ payload: expect.objectContaining({ jti: plain }), consumed: null });
    expect(otherModel).toBeUndefined();
    expect(await store.findMany([])).toEqual([]);
  });

  it('answers each kind of one token id asked together (as introspection asks) from its own row', async () => {
    const adapter = createOidcAdapter(store, createClientCache(store), RETENTION);
    const [token, grant] = [id(), id()];
    await adapter('Grant').upsert(grant, { jti: grant, accountId: 'acc-2' }, 600);
    await adapter('RefreshToken').upsert(token, { jti: token, kind: 'RefreshToken', grantId: grant }, 600);
    const kinds = ['AccessToken', 'ClientCredentials', 'RefreshToken'].map((model) => ({ model, id: token }));
    const [access, credentials, refresh] = await store.findMany(kinds);
    expect(access).toBeUndefined();
    expect(credentials).toBeUndefined();
    expect(refresh).toMatchObject({ payload: { kind: 'RefreshToken' }, grant: { payload: { jti: grant } } });
    // The same key twice, and one kind alone, read the same row.
    const twice = await store.findMany([kinds[2]!, kinds[2]!]);
    expect(twice).toEqual([refresh, refresh]);
    expect(await store.findMany([kinds[2]!])).toEqual([refresh]);
    expect(await store.findMany([kinds[0]!])).toEqual([undefined]);
  });

  it('returns an interaction with the session it began in and the grant its consent names', async () => {
    const adapter = createOidcAdapter(store, createClientCache(store), RETENTION);
    const [interaction, consented, signedOut, session, grant] = [id(), id(), id(), id(), id()];
    const uid = `uid-${session}`;
    await adapter('Session').upsert(session, { jti: session, uid, accountId: 'acc-3' }, 600);
    await adapter('Grant').upsert(grant, { jti: grant, accountId: 'acc-3' }, 600);
    const began = { uid, accountId: 'acc-3', cookie: session };
    await adapter('Interaction').upsert(interaction, { jti: interaction, kind: 'Interaction', session: began }, 600);
    await adapter('Interaction').upsert(consented, { jti: consented, kind: 'Interaction', session: began, result: { consent: { grantId: grant } } }, 600);
    await adapter('Interaction').upsert(signedOut, { jti: signedOut, kind: 'Interaction' }, 600);
    const [found, withConsent, bare] = await store.findMany([
      { model: 'Interaction', id: interaction },
      { model: 'Interaction', id: consented },
      { model: 'Interaction', id: signedOut },
    ]);
    expect(found).toMatchObject({ payload: { jti: interaction }, session: { payload: { jti: session, uid, accountId: 'acc-3' }, consumed: null } });
    expect(found).not.toHaveProperty('grant');
    expect(withConsent).toMatchObject({ grant: { payload: { jti: grant } }, session: { payload: { jti: session } } });
    expect(bare).toEqual({ payload: expect.objectContaining({ jti: signedOut }), consumed: null });
    // A token is read by its own fields only: an interaction's paths name nothing for it.
    const token = id();
    await adapter('AccessToken').upsert(token, { jti: token, session: { uid }, result: { consent: { grantId: grant } } }, 600);
    expect(await store.findMany([{ model: 'AccessToken', id: token }])).toEqual([{ payload: expect.objectContaining({ jti: token }), consumed: null }]);
  });
});

describe('batches of requests that end at once (group commit)', () => {
  const columns = { grantId: null, uid: null, userCode: null, accountId: null, clientId: null, consumedAt: null, expiresAt: new Date(Date.now() + 600_000) };
  const up = (model: string, key: string, n: number): StoreWrite => ({ kind: 'upsert', model, id: key, json: JSON.stringify({ jti: key, n }), columns });
  const payloadOf = async (model: string, key: string) => (await store.find(model, key))?.payload;

  it('leave each row as the last of them wrote it, and each resolves once its writes are stored', async () => {
    const [a, b, c] = [id(), id(), id()];
    await store.writeBatch([up('Session', c, 0)]);
    // Three requests ending in one turn of the event loop: their batches touch the same rows.
    const done = await Promise.all([
      store.writeBatch([up('Session', a, 1), up('Grant', b, 1)]).then(() => payloadOf('Session', a)),
      store.writeBatch([up('Session', a, 2), { kind: 'destroy', model: 'Session', id: c }]),
      store.writeBatch([{ kind: 'destroy', model: 'Grant', id: b }, up('Grant', c, 3)]),
    ]);
    expect(done[0]).toMatchObject({ n: 2 });
    expect(await payloadOf('Session', a)).toMatchObject({ n: 2 });
    expect(await payloadOf('Grant', b)).toBeUndefined();
    expect(await payloadOf('Session', c)).toBeUndefined();
    expect(await payloadOf('Grant', c)).toMatchObject({ n: 3 });
  });

  it('are committed, not dropped, when the store closes while they wait for their group', async () => {
    const own = await createOidcStore(providerOf(dbUrl), dbUrl, { poolSize: 1 });
    const key = id();
    const written = own.writeBatch([up('Session', key, 7)]);
    await own.close();
    await written;
    expect(await payloadOf('Session', key)).toMatchObject({ n: 7 });
  });

  it('wait the configured window for more writes before their commit', async () => {
    const own = await createOidcStore(providerOf(dbUrl), dbUrl, { poolSize: 1, commitWindowMs: 50 });
    const key = id();
    let stored = false;
    const written = own.writeBatch([up('Session', key, 1)]).then(() => (stored = true));
    await sleep(20);
    expect(stored).toBe(false);
    await written;
    await own.close();
    expect(await payloadOf('Session', key)).toMatchObject({ n: 1 });
  });

  it.skipIf(process.env.TEST_DATABASE_URL?.startsWith('postgres'))('on SQLite, take each purge batch with a group, so it waits as writes do while the log restarts', async () => {
    const own = await createOidcStore('sqlite', dbUrl, { poolSize: 1, commitWindowMs: 50 });
    const key = id();
    let purged = false;
    const written = own.writeBatch([up('AccessToken', key, 1)]);
    const purge = own.purgeExpired(new Date(), 100).then(() => (purged = true));
    await sleep(20);
    expect(purged).toBe(false);
    await Promise.all([written, purge]);
    await own.close();
    expect(await payloadOf('AccessToken', key)).toMatchObject({ n: 1 });
  });

  it('fail only the request whose write cannot be stored', async () => {
    const [a, b, c] = [id(), id(), id()];
    const bad: StoreWrite = { ...up('Grant', c, 1), columns: { ...columns, expiresAt: new Date(Number.NaN) } } as StoreWrite;
    const outcomes = await Promise.allSettled([
      store.writeBatch([up('Session', a, 1)]),
      store.writeBatch([up('Session', b, 1), bad]),
      store.writeBatch([up('Grant', a, 1)]),
    ]);
    expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect(await payloadOf('Session', a)).toMatchObject({ n: 1 });
    expect(await payloadOf('Grant', a)).toMatchObject({ n: 1 });
    // The failed request's batch is applied whole or not at all.
    expect(await payloadOf('Session', b)).toBeUndefined();
    expect(await payloadOf('Grant', c)).toBeUndefined();
  });
});

describe('accounts read by the store', () => {
  it('match the user Prisma wrote, including booleans and times', async () => {
    const user = await prisma.user.create({
      data: { email: 'Ann@Example.com', emailNormalized: 'ann@example.com', username: 'ann', givenName: 'Ann', familyName: 'Lee', picture: 'https://avatars.example.test/ann', emailVerified: true, active: false },
    });
    expect(await store.findAccount(user.id)).toEqual({
      id: user.id,
      email: 'Ann@Example.com',
      emailVerified: true,
      username: 'ann',
      name: null,
      givenName: 'Ann',
      familyName: 'Lee',
      picture: 'https://avatars.example.test/ann',
      active: false,
      updatedAt: user.updatedAt,
    });
    expect(await store.findAccount('nobody')).toBeUndefined();
  });
});

describe('a password sign-in’s reads and writes through the store', () => {
  it('finds the user Prisma wrote by email or username, every column as Prisma reads it', async () => {
    const user = await prisma.user.create({
      data: { email: 'Bo@Example.com', emailNormalized: 'bo@example.com', username: 'Bo.Li', usernameNormalized: 'bo.li', passwordHash: '$argon2id$x', isStaff: true, isDeveloper: true, lastLoginAt: new Date('2026-01-02T03:04:05.678Z') },
    });
    expect(await store.findUserByLogin('bo@example.com')).toEqual(user);
    expect(await store.findUserByLogin('bo.li')).toEqual(user);
    expect(await store.findUserByLogin('nobody@example.com')).toBeUndefined();
  });

  it('records a sign-in: the time and an upgraded hash, leaving the rest (updated_at too) as it was', async () => {
    const user = await prisma.user.create({ data: { email: 'cy@example.com', emailNormalized: 'cy@example.com', passwordHash: 'old' } });
    const at = new Date(Date.now() + 1000);
    await store.recordLogin(user.id, at);
    expect(await prisma.user.findUnique({ where: { id: user.id } })).toEqual({ ...user, lastLoginAt: at });
    await store.recordLogin(user.id, at, 'new');
    expect(await prisma.user.findUnique({ where: { id: user.id } })).toEqual({ ...user, lastLoginAt: at, passwordHash: 'new' });
  });

  it('stores the writes of sign-ins ending together as if each were written alone, and fails only a bad one', async () => {
    const [ann, ben] = await Promise.all(['ann', 'ben'].map((name) => prisma.user.create({ data: { email: `${name}-${id()}@example.com`, emailNormalized: `${name}-${id()}@example.com`, passwordHash: 'old' } })));
    const [earlier, later] = [new Date(Date.now() + 1000), new Date(Date.now() + 2000)];
    const event = (userId: string) => ({ id: `audit-${id()}`, event: 'login.success', userId, actorId: userId, ip: null, userAgent: null, detail: { method: 'password' }, createdAt: earlier });
    const [first, second] = [event(ann!.id), event(ben!.id)];
    // Made in one turn, as authenticate makes them: one group, on both stores.
    await Promise.all([
      store.recordLogin(ann!.id, earlier, 'upgraded'),
      store.insertAuditEvent(first),
      store.recordLogin(ann!.id, later),
      store.recordLogin(ben!.id, later),
      store.insertAuditEvent(second),
    ]);
    expect(await prisma.user.findUnique({ where: { id: ann!.id } })).toEqual({ ...ann, lastLoginAt: later, passwordHash: 'upgraded' });
    expect(await prisma.user.findUnique({ where: { id: ben!.id } })).toEqual({ ...ben, lastLoginAt: later });
    expect(await prisma.auditEvent.findMany({ where: { id: { in: [first.id, second.id] } }, orderBy: { userId: 'asc' } })).toEqual(
      [first, second].sort((a, b) => a.userId.localeCompare(b.userId)),
    );
    // An event whose id is taken fails; the sign-in written beside it is stored all the same.
    const [again, login] = await Promise.allSettled([store.insertAuditEvent(first), store.recordLogin(ben!.id, earlier)]);
    expect(again.status).toBe('rejected');
    expect(login.status).toBe('fulfilled');
    expect((await prisma.user.findUnique({ where: { id: ben!.id } }))?.lastLoginAt).toEqual(earlier);
  });

  it('takes a point on each counter at once, as rate-limiter-flexible counts them, in rows it and Prisma read back', async () => {
    const [soon, past] = [new Date(Date.now() + 60_000), new Date(Date.now() - 1000)];
    const k = (name: string) => `rl-take:${name}-${id()}`;
    const [live, forever, gone, fresh] = [k('live'), k('forever'), k('gone'), k('fresh')];
    await prisma.rateLimiterFlexible.createMany({ data: [{ key: live, points: 3, expire: soon }, { key: forever, points: 1, expire: null }, { key: gone, points: 9, expire: past }] });
    const before = Date.now();
    const rows = await store.takeRateLimits([live, forever, gone, fresh], 120_000);
    // A live counter gains a point; an expired or missing one starts a window of its own.
    const byKey = new Map(rows.map((r) => [r.key, r]));
    expect([live, forever].map((key) => byKey.get(key))).toEqual([{ key: live, points: 4, expire: soon }, { key: forever, points: 2, expire: null }]);
    for (const key of [gone, fresh]) {
      expect(byKey.get(key)?.points).toBe(1);
      expect(byKey.get(key)?.expire?.getTime()).toBeGreaterThanOrEqual(before + 120_000);
      expect(byKey.get(key)?.expire?.getTime()).toBeLessThanOrEqual(Date.now() + 120_000);
    }
    expect(await prisma.rateLimiterFlexible.findMany({ where: { key: { in: [live, forever, gone, fresh] } } })).toEqual(expect.arrayContaining(rows));
    // rate-limiter-flexible reads the same counts and windows, and adds to them.
    const limiter = new RateLimiterPrisma({ storeClient: prisma, tableName: 'rateLimiterFlexible', keyPrefix: '', points: 10, duration: 60, clearExpiredByTimeout: false });
    expect((await limiter.get(fresh))?.consumedPoints).toBe(1);
    expect((await limiter.penalty(fresh, 1)).consumedPoints).toBe(2);
    expect((await store.takeRateLimits([fresh], 120_000))[0]).toEqual({ ...byKey.get(fresh), points: 3 });
  });

  it('gives each of concurrent takes a point of its own', async () => {
    const [a, b] = [`rl-race:a-${id()}`, `rl-race:b-${id()}`];
    const taken = await Promise.all(Array.from({ length: 20 }, () => store.takeRateLimits([a, b], 60_000)));
    for (const key of [a, b]) expect(taken.map((rows) => rows.find((r) => r.key === key)!.points).sort((x, y) => x - y)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
  });

  it('returns points with a sign-in’s writes: clears, and gives back only in the window they were taken in', async () => {
    const user = await prisma.user.create({ data: { email: `rl-${id()}@example.com`, emailNormalized: `rl-${id()}@example.com`, passwordHash: 'h' } });
    const [account, ip, other] = [`rl-return:account-${id()}`, `rl-return:ip-${id()}`, `rl-return:other-${id()}`];
    for (let i = 0; i < 3; i += 1) await store.takeRateLimits([account, ip, other], 60_000);
    const [row] = await store.takeRateLimits([ip], 60_000);
    const at = new Date(Date.now() + 1000);
    // One group, as two sign-ins ending at once make it: their points given back add up.
    await Promise.all([
      store.returnRateLimits({ clear: [account], giveBack: [row!] }),
      store.returnRateLimits({ clear: [], giveBack: [row!, { key: other, expire: new Date(row!.expire!.getTime() - 60_000) }] }),
      store.recordLogin(user.id, at),
    ]);
    const counts = async () => Object.fromEntries((await prisma.rateLimiterFlexible.findMany({ where: { key: { in: [account, ip, other] } } })).map((r) => [r.key, r.points]));
    // `other` was named with another window's end: a counter started again owes nothing back.
    expect(await counts()).toEqual({ [ip]: 2, [other]: 3 });
    expect((await prisma.user.findUnique({ where: { id: user.id } }))?.lastLoginAt).toEqual(at);
    // Alone, and never below zero; a key both cleared and given back is cleared.
    const otherRow = { key: other, expire: row!.expire }; // taken in the statements that started ip's window
    await store.returnRateLimits({ clear: [ip], giveBack: [row!, otherRow, otherRow, otherRow, otherRow] });
    expect(await counts()).toEqual({ [other]: 0 });
  });

  it('takes and returns points while the purge deletes expired counters, with no error (two stores, as two processes)', async () => {
    const other = await createOidcStore(providerOf(dbUrl), dbUrl, { poolSize: 2 });
    const accounts = Array.from({ length: 5 }, (_, i) => `rl-purge:account-${i}-${id()}`);
    const ips = Array.from({ length: 3 }, (_, i) => `rl-purge:ip-${i}-${id()}`);
    const errors: unknown[] = [];
    let purging = true;
    // Windows of 20 ms, so that counters expire and start again under the purge all the time.
    const purger = (async () => {
      while (purging) {
        await purgeExpiredCounters(prisma, providerOf(dbUrl)).catch((err: unknown) => errors.push(err));
        await sleep(5);
      }
    })();
    const attempt = async (k: number) => {
      const s = k % 2 ? other : store;
      const [account, ip] = [accounts[k % accounts.length]!, ips[(k * 7) % ips.length]!];
      const rows = await s.takeRateLimits([account, ip], 20);
      const [a, i] = [rows.find((r) => r.key === account)!, rows.find((r) => r.key === ip)!];
      await s.returnRateLimits(k % 3 === 0 ? { clear: [account], giveBack: [i] } : { clear: [], giveBack: [a, i] });
    };
    try {
      const running = new Set<Promise<void>>();
      for (let k = 0; k < 900; k += 1) {
        const p: Promise<void> = attempt(k).catch((err: unknown) => void errors.push(err)).finally(() => running.delete(p));
        running.add(p);
        if (running.size >= 40) await Promise.race(running);
      }
      await Promise.all(running);
    } finally {
      purging = false;
      await purger;
      await other.close();
    }
    expect(errors.map((e) => String((e as Error).message))).toEqual([]);
  });

  it('writes audit events that Prisma reads back whole', async () => {
    const createdAt = new Date('2026-03-04T05:06:07.089Z');
    const event = { id: `audit-${id()}`, event: 'login.success', userId: 'u1', actorId: 'u1', ip: '192.0.2.1', userAgent: 'test', detail: { method: 'password' }, createdAt };
    await store.insertAuditEvent(event);
    await store.insertAuditEvent({ ...event, id: `${event.id}-b`, userId: null, actorId: null, ip: null, userAgent: null, detail: null });
    expect(await prisma.auditEvent.findUnique({ where: { id: event.id } })).toEqual(event);
    expect(await prisma.auditEvent.findUnique({ where: { id: `${event.id}-b` } })).toMatchObject({ userId: null, detail: null, createdAt });
  });
});
