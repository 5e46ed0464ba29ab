import type { Db } from './prisma.js';

const WRITES = new Set(['update', 'updateMany', 'updateManyAndReturn', 'upsert', 'delete', 'deleteMany']);

/** What to drop when this client writes a model: users by id (all when not by id), and tokens. */
export type OnWrite = {
  user?: (id: string | undefined) => void;
  oidcPayload?: () => void;
};

/**
 * Caches of database rows learn of this process's own writes made through Prisma (admin and API
 * changes, revoking a user's sessions), so those apply here at once.
 */
export function invalidateOnWrite(db: Db, on: OnWrite): Db {
  const after = (model: keyof OnWrite) => ({
    async $allOperations({ operation, args, query }: { operation: string; args: unknown; query: (a: unknown) => Promise<unknown> }) {
      const result = await query(args);
      if (WRITES.has(operation)) {
        const id = (args as { where?: { id?: unknown } }).where?.id;
        on[model]?.(typeof id === 'string' ? id : undefined);
      }
      return result;
    },
  });
  return db.$extends({ query: { user: after('user'), oidcPayload: after('oidcPayload') } }) as unknown as Db;
}
