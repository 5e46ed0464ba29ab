import { z } from 'zod';
import type { Config } from '../config/env.js';
import type { Db } from '../db/prisma.js';

const ttl = (max: number) => z.number().int().min(30).max(max);

/** Settings an admin may change at run time. Every key is optional in storage: env gives defaults. */
export const Settings = z.object({
  accessTokenTtl: ttl(24 * 3600),
  idTokenTtl: ttl(24 * 3600),
  refreshTokenTtl: ttl(365 * 24 * 3600),
  registrationOpen: z.boolean(),
  allowUnverifiedLogin: z.boolean(),
  loginMaxFailuresPerAccount: z.number().int().min(1).max(1000),
  loginMaxFailuresPerIp: z.number().int().min(1).max(100_000),
  loginThrottleWindow: z.number().int().min(1).max(24 * 3600),
});
export type Settings = z.infer<typeof Settings>;
export const SettingsPatch = Settings.partial().strict();

/**
 * The stored values that are still valid, each on its own: one value out of bounds (written by an
 * older version, or by hand) falls back to its default without taking the others with it (a
 * registration closed by an admin stays closed).
 */
function storedValues(rows: readonly { key: string; value: unknown }[]): Partial<Settings> {
  const valid: Record<string, unknown> = {};
  for (const { key, value } of rows) {
    if (!Object.hasOwn(Settings.shape, key)) continue;
    const parsed = (Settings.shape[key as keyof Settings] as z.ZodType).safeParse(value);
    if (parsed.success) valid[key] = parsed.data;
  }
  return valid as Partial<Settings>;
}

/** The environment's values for the runtime settings: what applies until an admin changes one. */
export const settingsDefaults = (config: Config): Settings => ({
  accessTokenTtl: config.oidc.ttl.accessToken,
  idTokenTtl: config.oidc.ttl.idToken,
  refreshTokenTtl: config.oidc.ttl.refreshToken,
  registrationOpen: config.accounts.registrationOpen,
  allowUnverifiedLogin: config.accounts.allowUnverifiedLogin,
  loginMaxFailuresPerAccount: config.throttle.maxFailuresPerAccount,
  loginMaxFailuresPerIp: config.throttle.maxFailuresPerIp,
  loginThrottleWindow: config.throttle.windowSeconds,
});

// How stale a process's copy may be: changes made by another process apply within this bound.
export const SETTINGS_REFRESH_MS = 5_000;

/**
 * Runtime settings: stored per key, read through an in-memory snapshot. The snapshot is
 * synchronous (oidc-provider asks for token lifetimes synchronously) and, once `init` has run,
 * reloaded every SETTINGS_REFRESH_MS, so even a process that has served nothing for an hour
 * answers its next request with settings at most that old; a change made here applies at once.
 */
export function createSettings(prisma: Db, defaults: Settings) {
  let current: Settings = { ...defaults };
  let loadedAt = 0;
  let loading: Promise<Settings> | undefined;
  let timer: NodeJS.Timeout | undefined;

  async function load(): Promise<Settings> {
    const rows = await prisma.setting.findMany();
    current = { ...defaults, ...storedValues(rows) };
    loadedAt = Date.now();
    return current;
  }

  function refresh() {
    loading ??= load().finally(() => (loading = undefined));
    return loading;
  }

  /**
   * Stores a change; returns the settings just before it (read afresh, not the snapshot, which may
   * be seconds old) and after it, so the audit log can say what each setting was.
   */
  async function change(patch: z.input<typeof SettingsPatch>, actorId?: string): Promise<{ before: Settings; after: Settings }> {
    const changes = SettingsPatch.parse(patch);
    const before = await load();
    await prisma.$transaction(
      Object.entries(changes).map(([key, value]) =>
        prisma.setting.upsert({ where: { key }, create: { key, value, updatedBy: actorId ?? null }, update: { value, updatedBy: actorId ?? null } }),
      ),
    );
    return { before, after: await load() };
  }

  return {
    /** Loads the stored values, and reloads them every SETTINGS_REFRESH_MS until `stop`; call once at start. */
    async init() {
      await refresh();
      timer ??= setInterval(() => void refresh().catch(() => undefined), SETTINGS_REFRESH_MS).unref();
    },
    stop: () => clearInterval(timer),
    /** The current settings, without waiting; refreshed in the background when stale. */
    snapshot(): Settings {
      if (Date.now() - loadedAt > SETTINGS_REFRESH_MS) void refresh().catch(() => undefined);
      return current;
    },
    /** The current settings, refreshed first when stale. */
    async get(): Promise<Settings> {
      return Date.now() - loadedAt > SETTINGS_REFRESH_MS ? refresh() : current;
    },
    defaults: () => ({ ...defaults }),
    update: async (patch: z.input<typeof SettingsPatch>, actorId?: string): Promise<Settings> => (await change(patch, actorId)).after,
    change,
  };
}

export type SettingsService = ReturnType<typeof createSettings>;
