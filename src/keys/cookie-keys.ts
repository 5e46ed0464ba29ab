import { randomBytes } from 'node:crypto';
import type { Db } from '../db/prisma.js';

/** Cookie signing keys: COOKIE_KEYS when set, else keys kept in the database (made on first start). */
export async function loadCookieKeys(prisma: Db, fromEnv: readonly string[] | undefined): Promise<string[]> {
  if (fromEnv?.length) return [...fromEnv];
  const rows = await prisma.cookieKey.findMany({ orderBy: { id: 'desc' } });
  if (rows.length > 0) return rows.map((r) => r.value);
  const created = await prisma.cookieKey.create({ data: { value: randomBytes(32).toString('base64url') } });
  return [created.value];
}
