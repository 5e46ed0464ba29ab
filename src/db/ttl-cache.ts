/**
 * Records by key, kept for `ttlMs` after loading (misses too). A process invalidates its own entry
 * when it changes a record, so the change applies at once there and within `ttlMs` everywhere else.
 */
export function createTtlCache<V>(load: (key: string) => Promise<V>, ttlMs: number, maxEntries = 10_000) {
  const entries = new Map<string, { at: number; value: V }>();
  return {
    async get(key: string): Promise<V> {
      const hit = entries.get(key);
      if (hit && Date.now() - hit.at < ttlMs) return hit.value;
      const value = await load(key);
      // Bounded: past the limit the oldest entry goes (a Map iterates in insertion order).
      if (!hit && entries.size >= maxEntries) entries.delete(entries.keys().next().value!);
      entries.set(key, { at: Date.now(), value });
      return value;
    },
    /** Drops one entry, or all of them when the key is not known. */
    invalidate(key?: string) {
      if (key === undefined) entries.clear();
      else entries.delete(key);
    },
  };
}
