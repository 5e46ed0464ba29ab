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
