import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPrisma, type Db } from '../../src/db/prisma.js';
import { migrate } from '../../src/db/migrate.js';
import { createOidcStore, type OidcStore } from '../../src/db/oidc-store.js';
import { providerOf } from '../../src/db/url.js';
import { createAccountCache, type AccountCache } from '../../src/oidc/account-cache.js';
import { invalidateOnWrite } from '../../src/db/invalidate-on-write.js';
import { createTestDatabase } from '../support/database.js';

let plain: Db;
let prisma: Db;
let store: OidcStore;
let accounts: AccountCache;
let drop: () => Promise<void>;
beforeAll(async () => {
  const db = await createTestDatabase();
  drop = db.drop;
  await migrate(db.url);
  plain = await createPrisma({ url: db.url, poolSize: 2 });
  store = await createOidcStore(providerOf(db.url), db.url, { poolSize: 2 });
  accounts = createAccountCache(store);
  prisma = invalidateOnWrite(plain, { user: (id) => accounts.invalidate(id) });
});
afterAll(async () => {
  await plain?.$disconnect();
  await store?.close();
  await drop?.();
});

let n = 0;
const newUser = () => {
  n += 1;
  return prisma.user.create({ data: { email: `u${n}@example.com`, emailNormalized: `u${n}@example.com`, name: 'Before' } });
};

describe('the account cache', () => {
  it('sees a change this process made at once, by id or in bulk', async () => {
    const user = await newUser();
    expect((await accounts.get(user.id))?.name).toBe('Before');
    await prisma.user.update({ where: { id: user.id }, data: { name: 'After' } });
    expect((await accounts.get(user.id))?.name).toBe('After');
    await prisma.user.updateMany({ where: { email: user.email }, data: { active: false } });
    expect((await accounts.get(user.id))?.active).toBe(false);
    await prisma.user.delete({ where: { id: user.id } });
    expect(await accounts.get(user.id)).toBeUndefined();
  });

  it('serves another process’s change once the cache bound has passed', async () => {
    const shortLived = createAccountCache(store, 1_000);
    const user = await newUser();
    expect((await shortLived.get(user.id))?.name).toBe('Before');
    // Another process's write: not through this process's client, so not seen yet.
    await plain.user.update({ where: { id: user.id }, data: { name: 'Elsewhere' } });
    expect((await shortLived.get(user.id))?.name).toBe('Before');
    await new Promise((r) => setTimeout(r, 1_050));
    expect((await shortLived.get(user.id))?.name).toBe('Elsewhere');
  });
});

describe('a cached lookup racing a change', () => {
  it('does not keep what it read before the change', async () => {
    const user = await newUser();
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let readDone!: () => void;
    const read = new Promise<void>((resolve) => (readDone = resolve));
    const slow = createAccountCache({ ...store, findAccount: async (id: string) => {
      const row = await store.findAccount(id);
      readDone();
      await gate;
      return row;
    } });
    const lookup = slow.get(user.id);
    // The change commits after the lookup has read (on PostgreSQL the read is a round trip of its own).
    await read;
    await plain.user.update({ where: { id: user.id }, data: { name: 'Changed' } });
    slow.invalidate(user.id);
    release();
    expect((await lookup)?.name).toBe('Before');
    // The next lookup reads again instead of serving what the racing one read.
    expect((await slow.get(user.id))?.name).toBe('Changed');
  });
});
