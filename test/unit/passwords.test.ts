import { describe, expect, it } from 'vitest';
import argon2 from 'argon2';
import { createPasswordHasher } from '../../src/passwords/passwords.js';

const cheap = { memoryCost: 1024, timeCost: 1, parallelism: 1 };

describe('password hashing', () => {
  it('verifies the right password only, and the dummy path always fails', async () => {
    const hasher = createPasswordHasher(cheap);
    const hash = await hasher.hash('violet kettle orbit 42');
    expect(hash).toMatch(/^\$argon2id\$/);
    expect(await hasher.verify(hash, 'violet kettle orbit 42')).toBe(true);
    expect(await hasher.verify(hash, 'violet kettle orbit 43')).toBe(false);
    expect(await hasher.verify(null, 'anything')).toBe(false);
    expect(await hasher.verify('not a hash', 'anything')).toBe(false);
  });

  it('takes composed and decomposed characters as the same password, and still verifies older hashes of either', async () => {
    const hasher = createPasswordHasher(cheap);
    const composed = 'caf\u00e9 kettle orbit 42';
    const decomposed = 'cafe\u0301 kettle orbit 42';
    for (const [made, typed] of [[composed, decomposed], [decomposed, composed], [decomposed, decomposed]]) {
      expect(await hasher.verify(await hasher.hash(made!), typed!)).toBe(true);
    }
    expect(await hasher.verify(await hasher.hash(composed), 'cafe kettle orbit 42')).toBe(false);
    // Made before hashes were normalized: of the decomposed text as typed.
    const older = await argon2.hash(decomposed, { type: argon2.argon2id, memoryCost: 1024, timeCost: 1, parallelism: 1 });
    expect(await hasher.verify(older, decomposed)).toBe(true);
  });

  it('asks for a rehash when the configured cost changes', async () => {
    const hash = await createPasswordHasher(cheap).hash('x');
    expect(createPasswordHasher(cheap).needsRehash(hash)).toBe(false);
    expect(createPasswordHasher({ ...cheap, timeCost: 2 }).needsRehash(hash)).toBe(true);
  });

  it('runs at most the configured number of hashes at once, the rest in order', async () => {
    const hasher = createPasswordHasher({ ...cheap, memoryCost: 8192, timeCost: 3 }, 1);
    const finished: number[] = [];
    await Promise.all([0, 1, 2, 3].map((i) => hasher.hash(`p${i}`).then(() => finished.push(i))));
    expect(finished).toEqual([0, 1, 2, 3]);
  });
});
