import { describe, expect, it } from 'vitest';
import { withoutSecrets } from '../../src/db/url.js';

describe('withoutSecrets: the database URL the start banner shows', () => {
  it('hides a password in the credentials, also one holding an @ (they end at the last @, as the driver reads them)', () => {
    expect(withoutSecrets('postgres://latch:s3cret@db.internal:5432/latch')).toBe('postgres://latch:***@db.internal:5432/latch');
    expect(withoutSecrets('postgresql://u:p@ss@h/db')).toBe('postgresql://u:***@h/db');
  });

  it('hides passwords and keys given as query parameters, and keeps the rest', () => {
    const shown = withoutSecrets('postgres://u@h/db?password=s3cret-db-pass&sslpassword=k3y&sslmode=require&connection_limit=5');
    expect(shown).not.toContain('s3cret');
    expect(shown).not.toContain('k3y');
    expect(shown).toBe('postgres://u@h/db?password=***&sslpassword=***&sslmode=require&connection_limit=5');
  });

  it('shows a URL without secrets, and a SQLite file, as they are; never an unparsable one', () => {
    expect(withoutSecrets('postgres://u@h:5432/db')).toBe('postgres://u@h:5432/db');
    expect(withoutSecrets('file:./data/latch.db')).toBe('file:./data/latch.db');
    expect(withoutSecrets('postgres://u:p@[bad')).toBe('postgres://(not shown: not a URL)');
  });
});
