import { AsyncLocalStorage } from 'node:async_hooks';
import type { Middleware } from 'koa';
import type { LiveRow, OidcStore, StoreWrite } from './oidc-store.js';

const keyOf = (model: string, id: string) => `${model}\u0000${id}`;

/** The provider writes of one request, held until it ends; the last write of a row wins. */
class PendingWrites {
  readonly writes = new Map<string, StoreWrite>();
  committed = false;

  add(w: StoreWrite) {
    const key = keyOf(w.model, w.id);
    const before = this.writes.get(key);
    // Consuming a row written in this request marks the pending write; after a destroy it stays gone.
    if (w.kind === 'consume' && before?.kind === 'upsert') {
      const { expiresAt } = before.columns;
      const keptUntil = expiresAt && expiresAt < w.keepUntil ? expiresAt : w.keepUntil;
      this.writes.set(key, { ...before, columns: { ...before.columns, consumedAt: w.at, expiresAt: keptUntil } });
    } else if (!(w.kind === 'consume' && before?.kind === 'destroy')) {
      this.writes.set(key, w);
    }
  }

  take() {
    const batch = [...this.writes.values()];
    this.writes.clear();
    return batch;
  }
}

const epoch = (d: Date) => Math.floor(d.getTime() / 1000);

function pendingRow(w: StoreWrite & { kind: 'upsert' }): LiveRow | undefined {
  const { expiresAt, consumedAt } = w.columns;
  if (expiresAt && expiresAt.getTime() <= Date.now()) return undefined;
  return { payload: w.payload as Record<string, unknown>, consumed: consumedAt ? epoch(consumedAt) : null };
}

/**
 * A unit of work per request for the provider's store: the writes of one request (an interaction
 * saved, a session rotated, a code consumed and its tokens issued) are held in memory and applied
 * in one transaction, one round trip, before the response is sent. Reads in the same request see
 * the held writes. If the request fails (throws, or answers 5xx), none of its writes are applied. Writes outside a request
 * (or after its commit) go straight to the store.
 */
export function createUnitOfWork(store: OidcStore) {
  const current = new AsyncLocalStorage<PendingWrites>();
  const open = () => {
    const pending = current.getStore();
    return pending && !pending.committed ? pending : undefined;
  };
  const hold = (w: StoreWrite, direct: () => Promise<void>) => {
    const pending = open();
    if (!pending) return direct();
    pending.add(w);
    return Promise.resolve();
  };
  // A held write of this row decides what a read returns; otherwise the store's row.
  const overlay = (pending: PendingWrites | undefined, model: string, id: string, row: LiveRow | undefined) => {
    const held = pending?.writes.get(keyOf(model, id));
    if (!held) return row;
    if (held.kind === 'destroy') return undefined;
    if (held.kind === 'upsert') return pendingRow(held);
    return row && { ...row, consumed: epoch(held.at) };
  };

  const scoped: OidcStore = {
    ...store,
    upsert: (model, id, payload, columns) => hold({ kind: 'upsert', model, id, payload, columns }, () => store.upsert(model, id, payload, columns)),
    consume: (model, id, keepUntil) => hold({ kind: 'consume', model, id, at: new Date(), keepUntil }, () => store.consume(model, id, keepUntil)),
    destroy: (model, id) => hold({ kind: 'destroy', model, id }, () => store.destroy(model, id)),
    async find(model, id) {
      const pending = open();
      const held = pending?.writes.get(keyOf(model, id));
      if (held && held.kind !== 'consume') return overlay(pending, model, id, undefined);
      return overlay(pending, model, id, await store.find(model, id));
    },
    async findBy(model, column, value) {
      const pending = open();
      const field = column === 'uid' ? 'uid' : 'userCode';
      for (const w of pending?.writes.values() ?? []) {
        if (w.kind === 'upsert' && w.model === model && w.columns[field] === value) return pendingRow(w);
      }
      const row = await store.findBy(model, column, value);
      // Every provider payload carries its id as jti.
      const id = row?.payload.jti;
      if (!row || typeof id !== 'string') return row;
      const held = pending?.writes.get(keyOf(model, id));
      // Rewritten in this request without this value any more (the loop above found no match).
      if (held?.kind === 'upsert') return undefined;
      return overlay(pending, model, id, row);
    },
    async revokeByGrantId(grantId, models) {
      // Rare (replay detection, revocation): apply what is held first so the order stays.
      const pending = open();
      if (pending?.writes.size) await store.writeBatch(pending.take());
      await store.revokeByGrantId(grantId, models);
    },
  };

  /** Runs the rest of the request in a unit of work and applies its writes before answering. */
  const middleware: Middleware = async (ctx, next) => {
    const pending = new PendingWrites();
    await current.run(pending, next);
    pending.committed = true;
    const batch = pending.take();
    // The provider answers its own failures (a 5xx page or JSON) instead of throwing: those are
    // failed requests too, and keep nothing.
    if (batch.length && ctx.status < 500) await store.writeBatch(batch);
  };

  return { store: scoped, middleware };
}

export type UnitOfWork = ReturnType<typeof createUnitOfWork>;
