/** A unique constraint refused the write (Prisma P2002): another request got there first. */
export function isUniqueViolation(err: unknown): boolean {
  return (err as { code?: string } | null)?.code === 'P2002';
}

/** The unique-constraint fields named by a P2002 error, as well as the adapter reports them. */
export function violatedFields(err: unknown): string {
  const meta = (err as { meta?: { target?: unknown; driverAdapterError?: unknown } }).meta;
  return JSON.stringify(meta ?? {}) + String((err as Error).message ?? '');
}
