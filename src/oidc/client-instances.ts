import type Provider from 'oidc-provider';
import type { ClientRecord } from '../db/oidc-store.js';
import { impossible, type ClientCache } from './adapter.js';

type Client = NonNullable<Awaited<ReturnType<Provider['Client']['find']>>>;

/**
 * Hands out the Client the provider built from a cached client record for as long as that record
 * is cached. The provider's own Client.find serializes and hashes the metadata on every call (a
 * SHA-256 of its JSON, twice per introspection) to tell whether it changed; the client cache
 * knows already, because a changed, reloaded or invalidated client is a new record.
 */
export function reuseClientInstances(provider: Provider, clients: ClientCache) {
  const find = provider.Client.find.bind(provider.Client);
  const built = new WeakMap<ClientRecord, Client>();
  provider.Client.find = async (id: string) => {
    const record = typeof id === 'string' && !impossible(id) ? await clients.get(id) : undefined;
    const known = record && built.get(record);
    if (known) return known;
    const client = await find(id);
    if (record && client) built.set(record, client);
    return client;
  };
}
