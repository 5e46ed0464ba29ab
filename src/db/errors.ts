/** A unique constraint refused the write (Prisma P2002): another request got there first. */
export function isUniqueViolation(err: unknown): boolean {
  return (err as { code?: string } | null)?.code === 'P2002';
}

/**
 * A write found no row to change or delete (Prisma P2025): a concurrent request deleted it after
 * this one looked it up. `model` is the Prisma model it names (User, Client, ...).
 */
export function recordNotFound(err: unknown): { model?: string } | undefined {
  if ((err as { code?: string } | null)?.code !== 'P2025') return undefined;
  return { model: (err as { meta?: { modelName?: string } }).meta?.modelName };
}

/** The unique-constraint fields named by a P2002 error, as well as the adapter reports them. */
export function violatedFields(err: unknown): string {
  const meta = (err as { meta?: { target?: unknown; driverAdapterError?: unknown } }).meta;
  return JSON.stringify(meta ?? {}) + String((err as Error).message ?? '');
}
