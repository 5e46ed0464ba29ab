import { describe, expect, it } from 'vitest';
import { databaseUnavailable } from '../../src/db/errors.js';

// Which failures a client should simply retry (503) and which are faults (500).
describe('databaseUnavailable', () => {
  const coded = (code: string, message = 'x') => Object.assign(new Error(message), { code });

  it.each([
    ['PostgreSQL shutting down', coded('57P01')],
    ['a statement past DATABASE_TIMEOUT', coded('57014')],
    ['a connection refused', coded('ECONNREFUSED')],
    ['a read-only standby after failover', coded('25006')],
    ['too many connections', coded('53300')],
    ['a connection exception', coded('08006')],
    ['SQLite busy', coded('SQLITE_BUSY')],
    ['SQLite full', coded('SQLITE_FULL')],
    ['an I/O error', coded('SQLITE_IOERR_WRITE')],
    ["pg's lost connection", new Error('Connection terminated unexpectedly')],
    ["pg-pool's wait", new Error('timeout exceeded when trying to connect')],
    ["pg's connect timeout", new Error('timeout expired')],
    ["pg's wait for an answer from a silent host", new Error('Query read timeout')],
    ['Prisma cannot reach the server', coded('P1001')],
    ['a cause two levels down', new Error('outer', { cause: new Error('middle', { cause: coded('57P03') }) })],
    ["Prisma's driver-adapter wrapping", Object.assign(new Error('x'), { code: 'P2010', meta: { driverAdapterError: { cause: { originalCode: '57P01' } } } })],
    ["a driver-adapter error for a connection closed under a transaction's COMMIT", new Error('ConnectionClosed', { cause: { kind: 'ConnectionClosed' } })],
    ['a database closed to connections for maintenance', coded('55000', 'database "latch" is not currently accepting connections')],
  ])('is true for %s', (_what, err) => expect(databaseUnavailable(err)).toBe(true));

  it.each([
    ['a unique violation', coded('23505')],
    ['a check violation', coded('23514')],
    ['a trigger refusing a write', coded('SQLITE_CONSTRAINT_TRIGGER')],
    ['a bug', new TypeError('cannot read properties of undefined')],
    ['a Prisma record not found', coded('P2025')],
    ['nothing', undefined],
    ['a string', 'boom'],
  ])('is false for %s', (_what, err) => expect(databaseUnavailable(err)).toBe(false));
});
