import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { Env, loadConfig } from '../../src/config/env.js';

describe('loadConfig', () => {
  it('starts with no settings at all: SQLite under ./data, port 3000', () => {
    const config = loadConfig({});
    expect(config.http.port).toBe(3000);
    expect(config.db.url).toBe('file:./data/latch.db');
    expect(config.oidc.issuer).toBe('http://localhost:3000/o');
    expect(config.oidc.ttl.accessToken).toBe(600);
    expect(config.argon2).toEqual({ memoryCost: 19456, timeCost: 2, parallelism: 1 });
    expect(Object.isFrozen(config.oidc.ttl)).toBe(true);
  });

  it('derives the issuer from PUBLIC_URL and marks cookies secure behind https', () => {
    const config = loadConfig({ PUBLIC_URL: 'https://id.example.com/', TRUST_PROXY: 'true' });
    expect(config.oidc.issuer).toBe('https://id.example.com/o');
    expect(config.http.secureCookies).toBe(true);
    expect(config.http.trustProxy).toBe(true);
    // Latch serves at the root of its host: a path would name URLs it never serves.
    for (const url of ['https://id.example.com/idp', 'https://id.example.com/?a=b', 'ftp://id.example.com']) {
      expect(() => loadConfig({ PUBLIC_URL: url })).toThrow(/PUBLIC_URL/);
    }
  });

  it('keeps the token lifetimes it gives the runtime settings within the settings\' ranges', () => {
    expect(() => loadConfig({ ACCESS_TOKEN_TTL: '5' })).toThrow(/ACCESS_TOKEN_TTL/);
    expect(() => loadConfig({ ID_TOKEN_TTL: String(2 * 24 * 3600) })).toThrow(/ID_TOKEN_TTL/);
    expect(() => loadConfig({ REFRESH_TOKEN_TTL: String(400 * 24 * 3600) })).toThrow(/REFRESH_TOKEN_TTL/);
    expect(loadConfig({ ACCESS_TOKEN_TTL: '30', REFRESH_TOKEN_TTL: '600' }).oidc.ttl).toMatchObject({ accessToken: 30, refreshToken: 600 });
  });

  it('reads TRUST_PROXY as on, off, or how many proxies are in front', () => {
    const http = (value?: string) => loadConfig(value === undefined ? {} : { TRUST_PROXY: value }).http;
    expect(http()).toMatchObject({ trustProxy: false, proxyHops: 0 });
    expect(http('false')).toMatchObject({ trustProxy: false, proxyHops: 0 });
    expect(http('true')).toMatchObject({ trustProxy: true, proxyHops: 1 });
    expect(http('2')).toMatchObject({ trustProxy: true, proxyHops: 2 });
    expect(() => http('many')).toThrow(/TRUST_PROXY/);
  });

  it('names every bad variable at once', () => {
    expect(() => loadConfig({ PORT: 'eighty', DATABASE_URL: 'mysql://x', ACCESS_TOKEN_TTL: '-5' })).toThrow(
      /PORT[\s\S]*DATABASE_URL: must start with file: \(SQLite\) or postgres:\/\/[\s\S]*ACCESS_TOKEN_TTL/,
    );
  });

  it('refuses PORT=0 without PUBLIC_URL, whose issuer would name port 0', () => {
    expect(() => loadConfig({ PORT: '0' })).toThrow(/PORT: 0 \(a free port\) needs PUBLIC_URL/);
    expect(loadConfig({ PORT: '0', PUBLIC_URL: 'http://127.0.0.1:8080' }).oidc.issuer).toBe('http://127.0.0.1:8080/o');
  });

  it('takes MAIL_FROM as one address, with or without a name', () => {
    expect(loadConfig({}).mail.from).toBe('Latch <no-reply@localhost>');
    expect(loadConfig({ MAIL_FROM: 'id@example.com' }).mail.from).toBe('id@example.com');
    for (const bad of ['notanaddress', 'Latch <no-reply>', 'a@example.com, b@example.com']) {
      expect(() => loadConfig({ MAIL_FROM: bad })).toThrow(/MAIL_FROM: one address/);
    }
  });

  it('bounds the group-commit window: 3 ms by default, 0 to 50', () => {
    expect(loadConfig({}).db.commitWindowMs).toBe(3);
    expect(loadConfig({ DATABASE_COMMIT_WINDOW_MS: '0' }).db.commitWindowMs).toBe(0);
    expect(() => loadConfig({ DATABASE_COMMIT_WINDOW_MS: '100' })).toThrow(/DATABASE_COMMIT_WINDOW_MS/);
  });

  it('stops at the renamed THREAD_POOL_NICE, naming ARGON2_NICE', () => {
    expect(() => loadConfig({ THREAD_POOL_NICE: '10' })).toThrow(/THREAD_POOL_NICE: renamed ARGON2_NICE/);
    expect(loadConfig({ ARGON2_NICE: '10' }).argon2Nice).toBe(10);
  });

  it("accepts only 'portable' for ARGON2_BUILD", () => {
    expect(() => loadConfig({ ARGON2_BUILD: 'portable' })).not.toThrow();
    expect(() => loadConfig({ ARGON2_BUILD: 'Portable' })).toThrow(/ARGON2_BUILD/);
  });

  it('rejects short cookie keys', () => {
    expect(() => loadConfig({ COOKIE_KEYS: 'short' })).toThrow(/COOKIE_KEYS: each key must be at least 32 characters/);
  });
});

describe('empty values', () => {
  it('count as unset, so VAR= in a .env file keeps the default', () => {
    const config = loadConfig({ PUBLIC_URL: '', ADMIN_EMAIL: '', ADMIN_PASSWORD: '', PORT: '' });
    expect(config.http.port).toBe(3000);
    expect(config.bootstrapAdmin).toBeUndefined();
  });

  it('lists every variable it reads in .env.example and the README, and no other', () => {
    // A renamed variable stays in the schema as z.never() only to stop a start that still sets it.
    const renamed = (schema: z.ZodType) => schema instanceof z.ZodOptional && schema.unwrap() instanceof z.ZodNever;
    const readNow = Object.entries(Env.shape).filter(([, schema]) => !renamed(schema as z.ZodType)).map(([name]) => name);
    const example = [...readFileSync('.env.example', 'utf8').matchAll(/^# ([A-Z][A-Z0-9_]+)=/gm)].map((m) => m[1]);
    expect(new Set(example)).toEqual(new Set(readNow));
    const readme = readFileSync('README.md', 'utf8');
    expect(readNow.filter((name) => !readme.includes(`\`${name}\``))).toEqual([]);
  });
});
