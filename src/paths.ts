import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The project folder (the one with package.json), found from this file whether it runs from src/
 * through tsx or compiled under dist/. Views, static files and migrations are read from there.
 */
function findRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error('package.json not found above the Latch sources');
    dir = parent;
  }
  return dir;
}

export const ROOT = findRoot();
export const fromRoot = (...parts: string[]) => join(ROOT, ...parts);
