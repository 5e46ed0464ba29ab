import { hash } from 'node:crypto';

/**
 * What a throttle counts under: a digest of the login, address or client IP. The counters' key is
 * a primary key, and PostgreSQL refuses an index entry over about 2.7 kB, so a client's long
 * value (an over-long login, a forwarded IP of its own choosing) must not reach it as it is; nor
 * are addresses kept in the clear there.
 */
export const throttleKey = (value: string) => hash('sha256', value, 'base64url');
