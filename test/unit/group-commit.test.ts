import { describe, expect, it } from 'vitest';
import { createGroupCommit } from '../../src/db/group-commit.js';

/** A group commit over an in-memory table that records each commit's rows; 'bad' rows fail. */
function table({ windowMs = 3, async = false, othersAtWork }: { windowMs?: number; async?: boolean; othersAtWork?: () => boolean } = {}) {
  const stored: string[] = [];
  const commits: string[][] = [];
  let alone = 0;
  const store = (rows: string[]) => {
    if (rows.includes('bad')) throw new Error('bad row');
    if (rows.includes('locked')) throw Object.assign(new Error('database is locked'), { code: 'SQLITE_BUSY' });
    // PostgreSQL's statement_timeout, waiting for a lock (perhaps one row's).
    if (rows.includes('row locked')) throw Object.assign(new Error('canceling statement due to statement timeout'), { code: '57014' });
    commits.push(rows);
    stored.push(...rows);
  };
  let afterCommits = 0;
  const group = createGroupCommit<string>({
    windowMs,
    othersAtWork,
    commitAll: async ? async (rows) => store(rows) : store,
    commitOne: (row) => {
      alone += 1;
      store([row]);
    },
    afterCommit: () => (afterCommits += 1),
  });
  return { group, stored, commits, afterCommits: () => afterCommits, retriedAlone: () => alone };
}

describe('group commit', () => {
  it('stores the writes that arrive within the window in one commit, and answers each once stored', async () => {
    const { group, stored, commits } = table();
    const answered: string[] = [];
    const writes = ['a', 'b', 'c'].map((row) => group.add(row).then(() => answered.push(`${row}:${stored.includes(row)}`)));
    expect(stored).toEqual([]);
    await Promise.all(writes);
    expect(commits).toEqual([['a', 'b', 'c']]);
    expect(answered).toEqual(['a:true', 'b:true', 'c:true']);
  });

  it('with a window of 0, stores the writes of one turn of the event loop together, before its timers', async () => {
    const { group, commits } = table({ windowMs: 0 });
    const timer = new Promise((resolve) => setTimeout(() => resolve('timer'), 0));
    const first = Promise.all([group.add('a'), group.add('b')]).then(() => 'stored');
    expect(await Promise.race([first, timer])).toBe('stored');
    await group.add('c');
    expect(commits).toEqual([['a', 'b'], ['c']]);
  });

  it('stores a lone request’s writes at the end of the turn instead of waiting the window for company', async () => {
    const { group, commits } = table({ windowMs: 50, othersAtWork: () => false });
    const timer = new Promise((resolve) => setTimeout(() => resolve('timer'), 10));
    const first = Promise.all([group.add('a'), group.add('b')]).then(() => 'stored');
    expect(await Promise.race([first, timer])).toBe('stored');
    expect(commits).toEqual([['a', 'b']]);
  });

  it('waits the window while other requests are at work, so their writes join the group', async () => {
    const { group, commits } = table({ windowMs: 50, othersAtWork: () => true });
    const first = group.add('a');
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(commits).toEqual([]);
    await Promise.all([first, group.add('b')]);
    expect(commits).toEqual([['a', 'b']]);
  });

  it('starts a new group for writes that arrive after a commit', async () => {
    const { group, commits } = table();
    await group.add('a');
    await Promise.all([group.add('b'), group.add('c')]);
    expect(commits).toEqual([['a'], ['b', 'c']]);
  });

  for (const async of [false, true]) {
    it(`fails only the write that cannot be stored, and stores the rest (${async ? 'async' : 'sync'} commit)`, async () => {
      const { group, stored, afterCommits } = table({ async });
      const outcomes = await Promise.allSettled(['a', 'bad', 'c'].map((row) => group.add(row)));
      expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
      expect((outcomes[1] as PromiseRejectedResult).reason).toEqual(new Error('bad row'));
      expect(stored).toEqual(['a', 'c']);
      expect(afterCommits()).toBe(1);
    });
  }

  for (const [locked, code] of [['locked', 'SQLITE_BUSY'], ['row locked', '57014']]) {
    it(`fails the whole group at once when the database cannot serve (${code}), rather than each write after another wait and out of order`, async () => {
      const { group, stored, retriedAlone } = table();
      const outcomes = await Promise.allSettled(['a', locked!, 'c'].map((row) => group.add(row)));
      expect(outcomes.map((o) => o.status)).toEqual(['rejected', 'rejected', 'rejected']);
      expect(outcomes.map((o) => ((o as PromiseRejectedResult).reason as { code?: string }).code)).toEqual([code, code, code]);
      expect(retriedAlone()).toBe(0);
      expect(stored).toEqual([]);
      await group.add('d');
      expect(stored).toEqual(['d']);
    });
  }

  it('one at a time: a group waiting for its commit is not overtaken by a later one', async () => {
    const commits: string[][] = [];
    let release!: () => void;
    const lockGone = new Promise<void>((r) => (release = r));
    const group = createGroupCommit<string>({
      windowMs: 1,
      oneAtATime: true,
      commitAll: async (rows) => {
        if (rows.includes('session written')) await lockGone;
        commits.push(rows);
      },
      commitOne: (row) => void commits.push([row]),
    });
    const first = group.add('session written');
    await new Promise((r) => setTimeout(r, 10));
    const later = [group.add('session destroyed'), group.add('other')];
    await new Promise((r) => setTimeout(r, 10));
    expect(commits).toEqual([]);
    release();
    await Promise.all([first, ...later]);
    expect(commits).toEqual([['session written'], ['session destroyed', 'other']]);
  });

  it('drains the commits under way too, and what waited behind them', async () => {
    const commits: string[][] = [];
    const group = createGroupCommit<string>({
      windowMs: 1,
      oneAtATime: true,
      commitAll: async (rows) => {
        await new Promise((r) => setTimeout(r, 20));
        commits.push(rows);
      },
      commitOne: (row) => void commits.push([row]),
    });
    void group.add('a');
    await new Promise((r) => setTimeout(r, 5));
    void group.add('b');
    await group.drain();
    expect(commits).toEqual([['a'], ['b']]);
  });

  it('commits nothing during a hold, then the writes that waited as one group', async () => {
    const { group, commits } = table({ windowMs: 1 });
    let release!: () => void;
    group.hold(new Promise<void>((r) => (release = r)));
    let released = false;
    const waitingForRelease = group.released().then(() => (released = true));
    const writes = [group.add('a'), group.add('b')];
    await new Promise((r) => setTimeout(r, 20));
    expect(commits).toEqual([]);
    expect(released).toBe(false);
    release();
    await Promise.all([...writes, waitingForRelease]);
    expect(commits).toEqual([['a', 'b']]);
  });

  it('ends a hold whose promise rejects, as one that resolves', async () => {
    const { group, commits } = table();
    group.hold(Promise.reject(new Error('checkpoint failed')));
    await group.add('a');
    await group.released();
    expect(commits).toEqual([['a']]);
  });

  it('drains the writes still waiting without waiting for the window', async () => {
    const { group, commits } = table({ windowMs: 60_000 });
    const write = group.add('a');
    await group.drain();
    expect(commits).toEqual([['a']]);
    await write;
  });
});
