/**
 * Records by key, kept for `ttlMs` after loading (misses too). A process invalidates its own entry
 * when it changes a record, so the change applies at once there and within `ttlMs` everywhere else.
 */
export function createTtlCache<V>(load: (key: string) => Promise<V>, ttlMs: number, maxEntries = 10_000) {
  const entries = new Map<string, { at: number; value: V }>();
  // Bumped by every invalidation: a load that started before one must not store what it read.
  let generation = 0;
  return {
    async get(key: string): Promise<V> {
      const hit = entries.get(key);
      if (hit && Date.now() - hit.at < ttlMs) return hit.value;
      const startedAt = generation;
      const value = await load(key);
      if (startedAt !== generation) return value;
      // Bounded: past the limit the entry loaded longest ago goes (a Map iterates in insertion order).
      entries.delete(key);
      if (entries.size >= maxEntries) entries.delete(entries.keys().next().value!);
      entries.set(key, { at: Date.now(), value });
      return value;
    },
    /** Drops one entry, or all of them when no key is given. */
    invalidate(key?: string) {
      generation += 1;
      if (key === undefined) entries.clear();
      else entries.delete(key);
    },
  };
}
