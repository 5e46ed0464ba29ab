import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import Provider from 'oidc-provider';

// patches/oidc-provider+*.patch, applied by `npm install`: each provider request gets its context
// as a plain property. The library's accessor, with a new getter closure per request, made V8
// keep every request's whole object graph through young-generation collections into the old
// generation (the bench's GC column shows the effect).
let server: Server;
let url: string;
const seen: (PropertyDescriptor | undefined)[] = [];

beforeAll(async () => {
  const provider = new Provider('http://127.0.0.1', { features: { devInteractions: { enabled: false } } });
  provider.use(async (ctx, next) => {
    await next();
    seen.push(Object.getOwnPropertyDescriptor(ctx, 'oidc'));
  });
  server = createServer(provider.callback());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

describe("the provider's per-request context", () => {
  it('is a plain property, made for the route the request reached', async () => {
    const discovery = await fetch(`${url}/.well-known/openid-configuration`);
    expect(discovery.status).toBe(200);
    expect(((await discovery.json()) as { issuer: string }).issuer).toBe('http://127.0.0.1');
    const preflight = await fetch(`${url}/token`, { method: 'OPTIONS', headers: { origin: 'https://app.example', 'access-control-request-method': 'POST' } });
    expect(preflight.status).toBe(204);

    const [forDiscovery, forPreflight] = seen;
    expect(forDiscovery?.get).toBeUndefined();
    expect((forDiscovery?.value as { route: string }).route).toBe('discovery');
    expect((forPreflight?.value as { route: string }).route).toBe('cors.token');
  });
});
