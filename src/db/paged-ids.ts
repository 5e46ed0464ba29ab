import { sqltag as sql, type Sql } from '@prisma/client/runtime/client';
import { z } from 'zod';
import type { Db } from './prisma.js';

/** The page a list is asked for, the same on every list: an offset Prisma's query engine keeps in 32 bits, or it would wrap to another page. */
export const PageQuery = z.object({
  page: z.coerce.number().int().min(1).max(1_000_000).default(1),
  pageSize: z.coerce.number().int().min(1).max(100).default(20),
});
export type Paging = z.input<typeof PageQuery>;

/**
 * One page of the ids a raw `FROM … WHERE …` fragment selects, in `order`, and how many it selects
 * in all, counted and paged in SQL: handing every match's id to Prisma instead would exceed the
 * bound parameters a query may have (P2029) once about a thousand rows match.
 */
export async function pageOfIds(prisma: Db, q: { id: Sql; from: Sql; order: Sql; page: number; pageSize: number }) {
  const [[count], rows] = await Promise.all([
    prisma.$queryRaw<{ n: bigint | number }[]>(sql`SELECT COUNT(*) AS n ${q.from}`),
    prisma.$queryRaw<{ id: string }[]>(sql`SELECT ${q.id} AS id ${q.from} ORDER BY ${q.order} LIMIT ${q.pageSize} OFFSET ${(q.page - 1) * q.pageSize}`),
  ]);
  return { ids: rows.map((r) => r.id), total: Number(count?.n ?? 0) };
}
