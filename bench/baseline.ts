import { createServer, type Server } from 'node:http';
import argon2 from 'argon2';
import { exportJWK, generateKeyPair } from 'jose';
import Koa from 'koa';
import Router from '@koa/router';
import mount from 'koa-mount';
import Provider, { type Adapter, type ClientMetadata } from 'oidc-provider';
import { loadConfig } from '../src/config/env.js';
import { baseConfiguration } from '../src/oidc/configuration.js';
import { applyConsent } from '../src/oidc/grants.js';
import { REDIRECT_URI, RESOURCE, USER } from './fixtures.js';
import { parseBody } from '../src/http/form-body.js';

const memoryAdapterModule = 'oidc-provider/lib/adapters/memory_adapter.js';
const lruModule = 'oidc-provider/lib/helpers/lru.js';

/**
 * The ceiling: oidc-provider with its own in-memory adapter and Latch's protocol configuration
 * (claims, lifetimes, PKCE, rotation, resource indicators), static clients, an in-memory account
 * with the same argon2 cost, and the smallest interactions that sign in and consent.
 */
export async function startBaseline(port: number, counter: { storage: number }) {
  const config = loadConfig({ PORT: String(port), HOST: '127.0.0.1', PUBLIC_URL: `http://127.0.0.1:${port}`, LOG_LEVEL: 'silent' });
  const keys = await Promise.all(
    (['RS256', 'ES256'] as const).map(async (alg) => ({ ...(await exportJWK((await generateKeyPair(alg, { extractable: true })).privateKey)), alg, use: 'sig', kid: alg })),
  );
  const hash = await argon2.hash(USER.password, { type: argon2.argon2id, memoryCost: config.argon2.memoryCost, timeCost: config.argon2.timeCost, parallelism: config.argon2.parallelism });
  const account = {
    accountId: 'bench-user',
    claims: () => ({ sub: 'bench-user', email: USER.email, email_verified: true, name: 'Bench User', preferred_username: USER.username }),
  };
  const client = { id: 'bench-client', secret: 'bench-secret-0123456789abcdefghijklmnop' };

  // oidc-provider's memory adapter, over one LRU store with room for 20,000 entries instead of
  // createMemoryAdapter's 1,000: at a few thousand requests a second the mix issued that many in
  // about a second, and its refresh chains' tokens were evicted between two uses ("refresh token
  // not found"), a ceiling that forgets the tokens it issued.
  type Adapters = { default: new (model: string, store: unknown) => Adapter };
  const { default: MemoryAdapter } = (await import(memoryAdapterModule)) as Adapters;
  const { default: LRU } = (await import(lruModule)) as { default: new (options: { maxSize: number }) => unknown };
  const store = new LRU({ maxSize: Number(process.env.BENCH_BASELINE_ENTRIES ?? 20_000) });
  const memory = (model: string) => new MemoryAdapter(model, store);
  // Count every adapter call, as Latch counts its queries.
  const adapter = (model: string) => {
    const inner = memory(model);
    return new Proxy(inner, {
      get(target, prop, receiver) {
        const value = Reflect.get(target, prop, receiver);
        if (typeof value !== 'function') return value;
        return (...args: unknown[]) => {
          counter.storage += 1;
          if (process.env.BENCH_TRACE_OPS === '1') console.error(`op ${counter.storage} ${String(prop)}(${model})`);
          return value.apply(target, args);
        };
      },
    });
  };

  const settings = { accessTokenTtl: config.oidc.ttl.accessToken, idTokenTtl: config.oidc.ttl.idToken, refreshTokenTtl: config.oidc.ttl.refreshToken } as never;
  const cookieKeys = ['baseline-cookie-key-0123456789abcdef'];
  const base = baseConfiguration(config, cookieKeys, () => settings);
  const provider = new Provider(config.oidc.issuer, {
    ...base,
    adapter: adapter as never,
    jwks: { keys } as never,
    clients: [
      {
        client_id: client.id,
        client_secret: client.secret,
        redirect_uris: [REDIRECT_URI],
        grant_types: ['authorization_code', 'refresh_token', 'client_credentials'],
        response_types: ['code'],
      } as ClientMetadata,
    ],
    findAccount: async (_ctx, sub) => (sub === account.accountId ? account : undefined),
    features: {
      ...base.features,
      resourceIndicators: {
        enabled: true,
        defaultResource: async (_ctx, _client, oneOf) => oneOf,
        useGrantedResource: async () => true,
        getResourceServerInfo: async (_ctx, indicator) => {
          if (indicator !== RESOURCE.indicator) throw new Error('unknown resource');
          return { audience: indicator, scope: RESOURCE.scopes.join(' '), accessTokenFormat: 'jwt', jwt: { sign: { alg: 'ES256' } } };
        },
      },
    },
  });

  const router = new Router({ prefix: '/interaction/:uid' });
  const form = parseBody({ formLimit: '16kb' });
  router.get('/', async (ctx) => {
    const { prompt } = await provider.interactionDetails(ctx.req, ctx.res);
    ctx.type = 'html';
    ctx.body = prompt.name === 'login' ? `<form action="/interaction/${ctx.params.uid}/login"></form>` : `<form action="/interaction/${ctx.params.uid}/confirm"></form>`;
  });
  router.post('/login', form, async (ctx) => {
    await provider.interactionDetails(ctx.req, ctx.res);
    const { login, password } = ctx.request.body as Record<string, string>;
    const ok = (login === USER.username || login === USER.email) && (await argon2.verify(hash, password ?? ''));
    if (!ok) ctx.throw(401);
    ctx.status = 303;
    ctx.redirect(await provider.interactionResult(ctx.req, ctx.res, { login: { accountId: account.accountId } }, { mergeWithLastSubmission: false }));
  });
  router.post('/confirm', form, async (ctx) => {
    const { prompt, params, session, grantId } = await provider.interactionDetails(ctx.req, ctx.res);
    const grant = grantId ? (await provider.Grant.find(grantId))! : new provider.Grant({ accountId: session!.accountId, clientId: String(params.client_id) });
    const saved = await applyConsent(grant, prompt.details).save();
    ctx.status = 303;
    ctx.redirect(await provider.interactionResult(ctx.req, ctx.res, { consent: { grantId: grantId ?? saved } }, { mergeWithLastSubmission: false }));
  });

  // oidc-provider signs its own cookies with its configured keys (keygrip's, as it ships); the
  // interaction routes' app gets the same ones.
  const app = new Koa({ keys: cookieKeys });
  app.use(router.routes());
  app.use(mount('/o', provider));
  const server: Server = createServer(app.callback());
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return { server, issuer: config.oidc.issuer, client };
}
