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

// PostgreSQL's classes and codes of a database that cannot serve now: connection exceptions (08),
// insufficient resources (53), shutdowns and restarts (57P01-57P03), a statement cancelled by
// DATABASE_TIMEOUT (57014), a lock not granted (55P03), and a read-only server (25006, a standby
// after failover). Node's network errors, SQLite's busy, locked, full, read-only and I/O errors,
// and Prisma's connection and pool-timeout codes are the same to a client.
const UNAVAILABLE_SQLSTATE = /^(08|53|57P0[123]$|57014$|55P03$|25006$)/;
const UNAVAILABLE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'P1001', 'P1002', 'P1008', 'P1017', 'P2024']);
const UNAVAILABLE_SQLITE = /^SQLITE_(BUSY|LOCKED|FULL|READONLY|IOERR|CANTOPEN)/;
// pg's own words for a connection lost or never got, which carry no code.
const UNAVAILABLE_MESSAGE = /Connection terminated|timeout exceeded when trying to connect|^timeout expired$|^Query read timeout$|Client has encountered a connection error|Connection is closed|is not currently accepting connections/i;
// Prisma's driver-adapter errors that name a lost or refused connection by kind, with no code (a
// connection closed under a transaction's COMMIT, say).
const UNAVAILABLE_KINDS = new Set(['ConnectionClosed', 'DatabaseNotReachable', 'SocketTimeout', 'TooManyConnections']);

/** The codes an error carries, through its causes and Prisma's driver-adapter wrapping. */
function* codesOf(err: unknown): Generator<{ code: string } | { message: string } | { kind: string }> {
  let e = err as { code?: unknown; message?: unknown; kind?: unknown; cause?: unknown; meta?: { driverAdapterError?: { cause?: { originalCode?: unknown; code?: unknown; kind?: unknown } } } } | undefined;
  for (let depth = 0; e && typeof e === 'object' && depth < 8; depth += 1) {
    const driver = e.meta?.driverAdapterError?.cause;
    for (const code of [e.code, (e as { originalCode?: unknown }).originalCode, driver?.originalCode, driver?.code]) if (typeof code === 'string') yield { code };
    for (const kind of [e.kind, driver?.kind]) if (typeof kind === 'string') yield { kind };
    if (typeof e.message === 'string') yield { message: e.message };
    e = e.cause as typeof e;
  }
}

/**
 * Whether a failure is the database's being unreachable, overloaded or locked rather than a fault
 * of the request or of Latch: the client should try again shortly (503), and nothing it sent was
 * wrong. Looks through the error's causes and Prisma's driver-adapter wrapping.
 */
export function databaseUnavailable(err: unknown): boolean {
  for (const found of codesOf(err)) {
    if ('message' in found) {
      if (UNAVAILABLE_MESSAGE.test(found.message)) return true;
      continue;
    }
    if ('kind' in found) {
      if (UNAVAILABLE_KINDS.has(found.kind)) return true;
      continue;
    }
    const { code } = found;
    if (UNAVAILABLE_CODES.has(code) || UNAVAILABLE_SQLITE.test(code) || (/^[0-9A-Z]{5}$/.test(code) && UNAVAILABLE_SQLSTATE.test(code))) return true;
  }
  return false;
}
