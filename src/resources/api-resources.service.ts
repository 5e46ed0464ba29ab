import { z } from 'zod';
import type { Db } from '../db/prisma.js';
import { isUniqueViolation } from '../db/errors.js';
import { AppError } from '../http/problem.js';

export const NewApiResource = z.object({
  indicator: z.url().refine((u) => !u.includes('#'), 'must not contain a fragment'),
  name: z.string().trim().min(1).max(100),
  scopes: z.array(z.string().regex(/^[\x21\x23-\x5b\x5d-\x7e]+$/, 'invalid scope token')).default([]),
  accessTokenTtl: z.number().int().min(30).optional(),
  signingAlg: z.enum(['ES256', 'RS256']).default('ES256'),
});
export type NewApiResource = z.input<typeof NewApiResource>;

export type ApiResource = { indicator: string; name: string; scopes: string[]; accessTokenTtl?: number; signingAlg: string };

// Resources change rarely and are read on every token request that names one: keep them in memory
// for a short while instead of querying each time.
const CACHE_MS = 30_000;

export function createApiResourcesService(prisma: Db) {
  let cache: { at: number; byIndicator: Map<string, ApiResource> } | undefined;

  async function all(): Promise<Map<string, ApiResource>> {
    if (cache && Date.now() - cache.at < CACHE_MS) return cache.byIndicator;
    const rows = await prisma.apiResource.findMany();
    const byIndicator = new Map(
      rows.map((r) => [
        r.indicator,
        {
          indicator: r.indicator,
          name: r.name,
          scopes: r.scopes.split(' ').filter(Boolean),
          ...(r.accessTokenTtl ? { accessTokenTtl: r.accessTokenTtl } : {}),
          signingAlg: r.signingAlg,
        },
      ]),
    );
    cache = { at: Date.now(), byIndicator };
    return byIndicator;
  }

  return {
    async create(input: NewApiResource) {
      const r = NewApiResource.parse(input);
      await prisma.apiResource
        .create({ data: { indicator: r.indicator, name: r.name, scopes: r.scopes.join(' '), accessTokenTtl: r.accessTokenTtl ?? null, signingAlg: r.signingAlg } })
        .catch((err: unknown) => {
          throw isUniqueViolation(err) ? new AppError('API_INDICATOR_TAKEN', `An API with the indicator ${r.indicator} is registered already.`) : err;
        });
      cache = undefined;
    },
    find: async (indicator: string) => (await all()).get(indicator),
    list: async () => [...(await all()).values()],
  };
}

export type ApiResourcesService = ReturnType<typeof createApiResourcesService>;
