import { dirname, resolve } from 'node:path';
import { mkdirSync } from 'node:fs';

export type Provider = 'sqlite' | 'postgresql';

export function providerOf(url: string): Provider {
  return url.startsWith('file:') ? 'sqlite' : 'postgresql';
}

/** The SQLite file behind a `file:` URL, resolved against the working directory; its folder is created. */
export function sqliteFile(url: string): string {
  const file = resolve(url.replace(/^file:/, '').replace(/\?.*$/, ''));
  mkdirSync(dirname(file), { recursive: true });
  return file;
}

/**
 * The database URL to show (the start banner): a password, in the credentials (which end at the
 * last @, as the driver reads them) or in the query (`?password=`, `sslpassword`, …), as ***.
 */
export function withoutSecrets(url: string): string {
  if (providerOf(url) === 'sqlite') return url;
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    for (const key of [...parsed.searchParams.keys()]) if (/pass|secret|key/i.test(key)) parsed.searchParams.set(key, '***');
    return parsed.toString();
  } catch {
    return `${url.split(':')[0]}://(not shown: not a URL)`;
  }
}
