import { describe, expect, it } from 'vitest';
import pg from 'pg';
import { migrate } from '../../src/db/migrate.js';
import { createPrisma } from '../../src/db/prisma.js';
import { createTestDatabase } from '../support/database.js';

describe.runIf(process.env.TEST_DATABASE_URL?.startsWith('postgres'))('Prisma on PostgreSQL', () => {
  it('gets back the pool places of transactions whose connection was lost, and goes on serving', async () => {
    const db = await createTestDatabase();
    await migrate(db.url);
    const prisma = await createPrisma({ url: db.url, poolSize: 2, timeoutSeconds: 2 });
    const admin = new pg.Client({ connectionString: db.url });
    await admin.connect();
    try {
      // More transactions than the pool has places, each cut off by the server halfway through,
      // as a failover or a restart cuts the transactions in flight.
      for (let i = 0; i < 3; i += 1) {
        const cutOff = prisma.$transaction(async (tx) => {
          const [backend] = await tx.$queryRawUnsafe<{ pid: number }[]>('SELECT pg_backend_pid() AS pid');
          await admin.query('SELECT pg_terminate_backend($1)', [backend!.pid]);
          await tx.user.count();
        });
        await expect(cutOff).rejects.toThrow(/connection/i);
      }
      // Each such transaction used to keep its place: with the pool used up, this waited 2 s and failed.
      expect(await prisma.user.count()).toBe(0);
      await prisma.$transaction(async (tx) => tx.user.count());
    } finally {
      await admin.end();
      await prisma.$disconnect();
      await db.drop();
    }
  });
});
