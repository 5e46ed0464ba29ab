import { beforeAll, describe, expect, it } from 'vitest';
import { exportJWK, generateKeyPair } from 'jose';
import Provider from 'oidc-provider';
import type { ClientRecord, OidcStore } from '../../src/db/oidc-store.js';
import { createClientCache, createOidcAdapter } from '../../src/oidc/adapter.js';
import { reuseClientInstances } from '../../src/oidc/client-instances.js';

let jwks: { keys: object[] };
beforeAll(async () => {
  const { privateKey } = await generateKeyPair('ES256', { extractable: true });
  jwks = { keys: [{ ...(await exportJWK(privateKey)), alg: 'ES256', use: 'sig' }] };
});

function setUp() {
  const records = new Map<string, ClientRecord>();
  let reads = 0;
  const store = { findClient: async (id: string) => ((reads += 1), records.get(id)) } as unknown as OidcStore;
  const clients = createClientCache(store);
  const provider = new Provider('http://127.0.0.1/o', {
    adapter: createOidcAdapter(store, clients, 60),
    jwks: jwks as never,
    features: { devInteractions: { enabled: false } },
  });
  reuseClientInstances(provider, clients);
  const save = (id: string, redirectUri: string) =>
    records.set(id, { metadata: { client_secret: 'sha256:x', redirect_uris: [redirectUri], id_token_signed_response_alg: 'ES256' }, trusted: false, resources: '' });
  return { provider, clients, save, reads: () => reads };
}

describe('client instances', () => {
  it('are built once per cached record and rebuilt when the record changes', async () => {
    const { provider, clients, save, reads } = setUp();
    save('app', 'https://app.example/one');
    const first = await provider.Client.find('app');
    expect(first?.redirectUris).toEqual(['https://app.example/one']);
    expect(await provider.Client.find('app')).toBe(first);
    expect(reads()).toBe(1);

    save('app', 'https://app.example/two');
    clients.invalidate('app');
    const changed = await provider.Client.find('app');
    expect(changed).not.toBe(first);
    expect(changed?.redirectUris).toEqual(['https://app.example/two']);
  });

  it('finds nothing for unknown or impossible ids', async () => {
    const { provider } = setUp();
    expect(await provider.Client.find('nobody')).toBeUndefined();
    expect(await provider.Client.find('a\u0000b')).toBeUndefined();
    expect(await provider.Client.find('')).toBeUndefined();
  });
});
