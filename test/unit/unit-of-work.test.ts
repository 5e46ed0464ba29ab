import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Adapter } from 'oidc-provider';
import type { Context } from 'koa';
import { migrate } from '../../src/db/migrate.js';
import { createOidcStore, type OidcStore } from '../../src/db/oidc-store.js';
import { createUnitOfWork, createWorkGauge, type UnitOfWork } from '../../src/db/unit-of-work.js';
import { createClientCache, createOidcAdapter } from '../../src/oidc/adapter.js';
import { providerOf } from '../../src/db/url.js';
import { createTestDatabase } from '../support/database.js';

// How long a consumed code or token is kept (CONSUMED_TOKEN_RETENTION), seconds.
const RETENTION = 3600;

let raw: OidcStore;
let uow: UnitOfWork;
let drop: () => Promise<void>;
// What the provider sees (writes held per request) and what another process would read.
let scoped: (model: string) => Adapter;
let outside: (model: string) => Adapter;
beforeAll(async () => {
  const db = await createTestDatabase();
  drop = db.drop;
  await migrate(db.url);
  raw = await createOidcStore(providerOf(db.url), db.url, { poolSize: 2 });
  uow = createUnitOfWork(countedStore());
  scoped = createOidcAdapter(uow.store, createClientCache(uow.store), RETENTION);
  outside = createOidcAdapter(raw, createClientCache(raw), RETENTION);
});
/** The store, counting its reads (see countReads). */
const countedStore = (): OidcStore => ({
  ...raw,
  find: (...args) => ((readCount += 1), raw.find(...args)),
  findMany: (...args) => ((readCount += 1), raw.findMany(...args)),
  findBy: (...args) => ((readCount += 1), raw.findBy(...args)),
});
afterAll(async () => {
  await raw?.close();
  await drop?.();
});

let n = 0;
const id = () => `uow-${Date.now()}-${(n += 1)}`;
/** How many reads reached the store since this was called. */
function countReads() {
  const start = readCount;
  return () => readCount - start;
}
let readCount = 0;

/** Runs `work` as one request would: inside the unit of work, committed when it returns. */
const request = (work: () => Promise<void>, ctx = { status: 200 }) => uow.middleware(ctx as Context, work);

describe('a unit of work per request', () => {
  it('applies all of a request’s writes together when it ends, and reads inside see them at once', async () => {
    const [kept, destroyed, consumed, created, shortLived] = [id(), id(), id(), id(), id()];
    await outside('Session').upsert(destroyed, { jti: destroyed, uid: `uid-${destroyed}` }, 60);
    await outside('AuthorizationCode').upsert(consumed, { jti: consumed }, 60);
    await outside('Grant').upsert(kept, { jti: kept, accountId: 'a1' }, 60);

    await request(async () => {
      await scoped('Session').destroy(destroyed);
      await scoped('Session').upsert(created, { jti: created, uid: `uid-${created}` }, 60);
      await scoped('AuthorizationCode').consume(consumed);
      await scoped('Grant').upsert(kept, { jti: kept, accountId: 'a2' }, 60);
      await scoped('Interaction').upsert(shortLived, { jti: shortLived }, 60);
      await scoped('Interaction').destroy(shortLived);

      // Inside the request: its own writes.
      expect(await scoped('Session').find(destroyed)).toBeUndefined();
      expect(await scoped('Session').findByUid(`uid-${destroyed}`)).toBeUndefined();
      expect(await scoped('Session').findByUid(`uid-${created}`)).toMatchObject({ jti: created });
      expect((await scoped('AuthorizationCode').find(consumed))?.consumed).toBeGreaterThan(0);
      expect(await scoped('Grant').find(kept)).toMatchObject({ accountId: 'a2' });
      expect(await scoped('Interaction').find(shortLived)).toBeUndefined();

      // Anyone else: nothing yet, but the code is consumed at once (see below).
      expect(await outside('Session').find(destroyed)).toBeDefined();
      expect(await outside('Session').find(created)).toBeUndefined();
      expect((await outside('AuthorizationCode').find(consumed))?.consumed).toBeGreaterThan(0);
      expect(await outside('Grant').find(kept)).toMatchObject({ accountId: 'a1' });
    });

    expect(await outside('Session').find(destroyed)).toBeUndefined();
    expect(await outside('Session').findByUid(`uid-${created}`)).toMatchObject({ jti: created });
    expect((await outside('AuthorizationCode').find(consumed))?.consumed).toBeGreaterThan(0);
    expect(await outside('Grant').find(kept)).toMatchObject({ accountId: 'a2' });
    expect(await outside('Interaction').find(shortLived)).toBeUndefined();
  });

  it('writes nothing for a request that fails', async () => {
    const [token, existing] = [id(), id()];
    await outside('AccessToken').upsert(existing, { jti: existing }, 60);
    await expect(
      request(async () => {
        await scoped('AccessToken').upsert(token, { jti: token }, 60);
        await scoped('AccessToken').destroy(existing);
        throw new Error('the request failed');
      }),
    ).rejects.toThrow('the request failed');
    expect(await outside('AccessToken').find(token)).toBeUndefined();
    expect(await outside('AccessToken').find(existing)).toBeDefined();
  });

  it('writes nothing for a request answered with a server error', async () => {
    const token = id();
    const ctx = { status: 200 };
    await request(async () => {
      await scoped('AccessToken').upsert(token, { jti: token }, 60);
      ctx.status = 500;
    }, ctx);
    expect(await outside('AccessToken').find(token)).toBeUndefined();
  });

  it('marks a token issued and consumed in the same request as consumed', async () => {
    const token = id();
    await request(async () => {
      await scoped('RefreshToken').upsert(token, { jti: token, grantId: 'g' }, 60);
      await scoped('RefreshToken').consume(token);
    });
    expect((await outside('RefreshToken').find(token))?.consumed).toBeGreaterThan(0);
  });

  describe('a request that fails after consuming a refresh token, as when the database connection is cut', () => {
    const lost = () => new Error('Connection terminated unexpectedly');
    /** A unit of work over the store as `change` alters it, and the provider's view through it. */
    const over = (change: Partial<OidcStore>) => {
      const work = createUnitOfWork({ ...raw, ...change });
      return { work, through: createOidcAdapter(work.store, createClientCache(work.store), RETENTION) };
    };
    const refreshFails = (work: UnitOfWork, through: (model: string) => Adapter, token: string) =>
      work.middleware({ status: 200 } as Context, async () => {
        await through('RefreshToken').find(token);
        await through('RefreshToken').consume(token);
        throw lost();
      });
    const givenBack = async (token: string) => {
      for (let waited = 0; waited < 3000; waited += 20) {
        if ((await outside('RefreshToken').find(token))?.consumed === undefined) return true;
        await new Promise((r) => setTimeout(r, 20));
      }
      return false;
    };

    it('tries the give-back again before answering when it fails at first (a dead pooled connection), so a retry at once works', async () => {
      const token = id();
      await outside('RefreshToken').upsert(token, { jti: token, grantId: 'g', exp: Math.floor(Date.now() / 1000) + 60 }, 60);
      let attempts = 0;
      const { work, through } = over({ unconsume: async (...args) => ((attempts += 1) === 1 ? Promise.reject(lost()) : raw.unconsume(...args)) });
      await expect(refreshFails(work, through, token)).rejects.toThrow(/terminated/);
      expect((await outside('RefreshToken').find(token))?.consumed).toBeUndefined();
      expect(attempts).toBe(2);
    });

    it('goes on giving it back in the background when the database takes longer to come back', async () => {
      const token = id();
      await outside('RefreshToken').upsert(token, { jti: token, grantId: 'g', exp: Math.floor(Date.now() / 1000) + 60 }, 60);
      let attempts = 0;
      const { work, through } = over({ unconsume: async (...args) => ((attempts += 1) <= 3 ? Promise.reject(lost()) : raw.unconsume(...args)) });
      await expect(refreshFails(work, through, token)).rejects.toThrow(/terminated/);
      expect(await givenBack(token)).toBe(true);
      expect(attempts).toBe(4);
    });

    it('gives it back when the consume was stored but its answer was lost', async () => {
      const token = id();
      await outside('RefreshToken').upsert(token, { jti: token, grantId: 'g', exp: Math.floor(Date.now() / 1000) + 60 }, 60);
      const { work, through } = over({
        consume: async (...args) => {
          await raw.consume(...args);
          throw lost();
        },
      });
      await expect(refreshFails(work, through, token)).rejects.toThrow(/terminated/);
      expect(await givenBack(token)).toBe(true);
    });

    it('does not give back a token another request consumed (a replay)', async () => {
      const token = id();
      await outside('RefreshToken').upsert(token, { jti: token, grantId: 'g', exp: Math.floor(Date.now() / 1000) + 60 }, 60);
      await outside('RefreshToken').consume(token);
      const { work, through } = over({});
      // The adapter refuses the second consume (invalid_grant), and the request fails.
      await expect(refreshFails(work, through, token)).rejects.toThrow();
      await new Promise((r) => setTimeout(r, 100));
      // Still consumed, or gone with its grant (the replay ended it): never usable again.
      const row = await outside('RefreshToken').find(token);
      expect(row === undefined || typeof row.consumed === 'number').toBe(true);
    });
  });

  it('redeems a code presented by two requests at once only once, and ends its grant', async () => {
    const [code, grantId, earlier, issued] = [id(), id(), id(), id()];
    await outside('Grant').upsert(grantId, { jti: grantId }, 60);
    await outside('AuthorizationCode').upsert(code, { jti: code, grantId }, 60);
    await outside('AccessToken').upsert(earlier, { jti: earlier, grantId }, 60);
    // Each as the provider runs a token request: the winner issues a token, and the loser's error
    // is answered (400), not thrown, so its request's writes are kept.
    const answers = await Promise.all(
      [0, 1].map(async () => {
        const ctx = { status: 200, body: '' };
        await request(async () => {
          try {
            await scoped('AuthorizationCode').consume(code);
            await scoped('AccessToken').upsert(issued, { jti: issued, grantId }, 60);
            ctx.body = 'issued';
          } catch (err) {
            [ctx.status, ctx.body] = [400, (err as { error: string }).error];
          }
        }, ctx);
        return ctx.body;
      }),
    );
    expect(answers.sort()).toEqual(['invalid_grant', 'issued']);
    expect(await outside('AccessToken').find(earlier)).toBeUndefined();
    // The winner's token may be written after the loser revoked what the grant had issued; it is
    // dead all the same, because its grant is gone (the provider checks every token against it).
    expect(await outside('Grant').find(grantId)).toBeUndefined();
  });

  it('writes what was saved, not later changes to the same object', async () => {
    const grant = id();
    const payload = { jti: grant, openid: { scope: 'openid' } };
    await request(async () => {
      await scoped('Grant').upsert(grant, payload, 60);
      payload.openid.scope = 'openid email';
      const read = (await scoped('Grant').find(grant)) as unknown as typeof payload;
      expect(read.openid.scope).toBe('openid');
      read.openid.scope = 'changed by a reader';
    });
    expect(await outside('Grant').find(grant)).toMatchObject({ openid: { scope: 'openid' } });
  });

  it('does not find a row by a uid it no longer has', async () => {
    const session = id();
    await outside('Session').upsert(session, { jti: session, uid: 'old-uid' }, 60);
    await request(async () => {
      await scoped('Session').upsert(session, { jti: session, uid: 'new-uid' }, 60);
      expect(await scoped('Session').findByUid('old-uid')).toBeUndefined();
      expect(await scoped('Session').findByUid('new-uid')).toMatchObject({ jti: session });
    });
    expect(await outside('Session').findByUid('old-uid')).toBeUndefined();
  });

  it('revokes a grant’s tokens issued earlier in the request, and keeps those issued after', async () => {
    const [before, after, grantId] = [id(), id(), id()];
    await request(async () => {
      await scoped('AccessToken').upsert(before, { jti: before, grantId }, 60);
      await scoped('AccessToken').revokeByGrantId(grantId);
      await scoped('RefreshToken').upsert(after, { jti: after, grantId }, 60);
    });
    expect(await outside('AccessToken').find(before)).toBeUndefined();
    expect(await outside('RefreshToken').find(after)).toBeDefined();
  });

  it('looks a token up as three models, with its grant and session, in one store read', async () => {
    const [token, grant, session] = [id(), id(), id()];
    const uid = `uid-${session}`;
    await outside('Grant').upsert(grant, { jti: grant, accountId: 'a1' }, 60);
    await outside('Session').upsert(session, { jti: session, uid, accountId: 'a1' }, 60);
    await outside('AccessToken').upsert(token, { jti: token, grantId: grant, sessionUid: uid }, 60);
    const reads = countReads();
    await request(async () => {
      // As oidc-provider's introspection does: the three kinds at once, then the session and grant.
      const found = await Promise.all(['AccessToken', 'ClientCredentials', 'RefreshToken'].map((model) => scoped(model).find(token)));
      expect(found.map((f) => f?.jti)).toEqual([token, undefined, undefined]);
      expect(await scoped('Session').findByUid(uid)).toMatchObject({ jti: session, accountId: 'a1' });
      expect(await scoped('Grant').find(grant)).toMatchObject({ jti: grant, accountId: 'a1' });
      expect(reads()).toBe(1);
      // Read ahead once: another read of the grant goes to the store.
      expect(await scoped('Grant').find(grant)).toMatchObject({ jti: grant });
      expect(reads()).toBe(2);
    });
  });

  it('reads an interaction and the session it began in as one store read, as interactionDetails asks for them', async () => {
    const [interaction, session] = [id(), id()];
    const uid = `uid-${session}`;
    await outside('Session').upsert(session, { jti: session, uid, accountId: 'a1' }, 60);
    await outside('Interaction').upsert(interaction, { jti: interaction, session: { uid, accountId: 'a1', cookie: session } }, 60);
    const reads = countReads();
    await request(async () => {
      expect(await scoped('Interaction').find(interaction)).toMatchObject({ jti: interaction, session: { uid } });
      expect(await scoped('Session').findByUid(uid)).toMatchObject({ jti: session, accountId: 'a1' });
      expect(reads()).toBe(1);
      // Read ahead once: the next read of that session goes to the store.
      expect(await scoped('Session').findByUid(uid)).toMatchObject({ jti: session });
      expect(reads()).toBe(2);
    });
  });

  it('reads a consented interaction and the grant its consent names as one store read, as the resumed authorization asks for them', async () => {
    const [interaction, grant] = [id(), id()];
    await outside('Grant').upsert(grant, { jti: grant, accountId: 'a1' }, 60);
    await outside('Interaction').upsert(interaction, { jti: interaction, result: { consent: { grantId: grant } } }, 60);
    const reads = countReads();
    await request(async () => {
      expect(await scoped('Interaction').find(interaction)).toMatchObject({ jti: interaction });
      expect(await scoped('Grant').find(grant)).toMatchObject({ jti: grant, accountId: 'a1' });
      expect(reads()).toBe(1);
    });
  });

  it('answers for a grant read ahead as gone without asking again', async () => {
    const token = id();
    await outside('RefreshToken').upsert(token, { jti: token, grantId: `revoked-${token}` }, 60);
    const reads = countReads();
    await request(async () => {
      expect(await scoped('RefreshToken').find(token)).toMatchObject({ jti: token });
      expect(await scoped('Grant').find(`revoked-${token}`)).toBeUndefined();
      expect(reads()).toBe(1);
    });
  });

  it('does not hand out a row read ahead that the request has since changed or destroyed', async () => {
    const [token, grant, session] = [id(), id(), id()];
    const uid = `uid-${session}`;
    await outside('Grant').upsert(grant, { jti: grant, accountId: 'a1' }, 60);
    await outside('Session').upsert(session, { jti: session, uid }, 60);
    await outside('AccessToken').upsert(token, { jti: token, grantId: grant, sessionUid: uid }, 60);
    await request(async () => {
      await scoped('AccessToken').find(token);
      await scoped('Grant').upsert(grant, { jti: grant, accountId: 'a2' }, 60);
      await scoped('Session').destroy(session);
      expect(await scoped('Grant').find(grant)).toMatchObject({ accountId: 'a2' });
      expect(await scoped('Session').findByUid(uid)).toBeUndefined();
    });
    await request(async () => {
      await scoped('AccessToken').find(token);
      // Revoking applies the held writes first; what was read ahead may predate them.
      await scoped('Grant').upsert(grant, { jti: grant, accountId: 'a3' }, 60);
      await scoped('AccessToken').revokeByGrantId(grant);
      expect(await scoped('Grant').find(grant)).toMatchObject({ accountId: 'a3' });
    });
  });

  it('counts the requests at work, so that a lone request’s commit does not wait for others', async () => {
    const gauge = createWorkGauge();
    const counted = createUnitOfWork(raw, gauge);
    const seen: boolean[] = [];
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    await counted.middleware({ status: 200 } as Context, async () => void seen.push(gauge.othersAtWork()));
    const first = counted.middleware({ status: 200 } as Context, () => held);
    await counted.middleware({ status: 200 } as Context, async () => void seen.push(gauge.othersAtWork()));
    release();
    await first;
    await expect(counted.middleware({ status: 200 } as Context, () => Promise.reject(new Error('failed')))).rejects.toThrow('failed');
    await counted.middleware({ status: 200 } as Context, async () => void seen.push(gauge.othersAtWork()));
    expect(seen).toEqual([false, true, false]);
    expect(gauge.othersAtWork()).toBe(false);
  });

  it('writes straight through outside a request', async () => {
    const token = id();
    await scoped('ClientCredentials').upsert(token, { jti: token }, 60);
    expect(await outside('ClientCredentials').find(token)).toBeDefined();
  });
});
