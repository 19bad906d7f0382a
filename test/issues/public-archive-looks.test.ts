import { describe, expect, it } from '@jest/globals';
import type { Pool } from '../../src/db/pool.js';
import { acceptsGzip, FRESH_MS, notModified, prepare, PublicArchive } from '../../src/issues/public-archive.js';

// When a process looks at the archive's fingerprint, and what it keeps, with a pool whose answers
// the test releases one by one and a clock it moves. Postgres itself is in public-archive.test.ts.

type Deferred = { sql: string; resolve: (rows: unknown[]) => void; reject: (err: Error) => void };

function fakePool() {
  const asked: Deferred[] = [];
  const pool = {
    query: (sql: string) => new Promise((resolve, reject) => asked.push({ sql, resolve: (rows) => resolve({ rows }), reject })),
  } as unknown as Pool;
  const looks = () => asked.filter((d) => d.sql.includes('hashtextextended'));
  return { pool, asked, looks };
}

const fingerprint = (hash: string, at: number) => [{ hash, changed_at: new Date(at) }];
const tick = () => new Promise((resolve) => setImmediate(resolve));

describe('looking at the fingerprint', () => {
  it('looks at most once per FRESH_MS, one look shared by everyone asking meanwhile, and again at once after changed()', async () => {
    const { pool, looks } = fakePool();
    let now = 10_000;
    const archive = new PublicArchive(pool, () => now);
    const first = [archive.changedAt(), archive.changedAt(), archive.changedAt()];
    await tick();
    expect(looks()).toHaveLength(1);
    looks()[0]!.resolve(fingerprint('1:5', 1000));
    expect(await Promise.all(first)).toEqual([new Date(1000), new Date(1000), new Date(1000)]);

    now += FRESH_MS - 1;
    await archive.changedAt();
    expect(looks()).toHaveLength(1);
    now += 1;
    const later = archive.changedAt();
    await tick();
    expect(looks()).toHaveLength(2);
    looks()[1]!.resolve(fingerprint('1:5', 1000));
    await later;

    archive.changed();
    const afterChange = archive.changedAt();
    await tick();
    expect(looks()).toHaveLength(3);
    looks()[2]!.resolve(fingerprint('2:9', 2000));
    expect(await afterChange).toEqual(new Date(2000));
  });

  it('does not let a look that began before changed() undo the one that began after it', async () => {
    const { pool, looks } = fakePool();
    const archive = new PublicArchive(pool, () => 0);
    const before = archive.changedAt();
    await tick();
    archive.changed();
    const after = archive.changedAt();
    await tick();
    expect(looks()).toHaveLength(2);
    // The later look (the state after the change) answers first, the earlier one last.
    looks()[1]!.resolve(fingerprint('new', 2000));
    expect(await after).toEqual(new Date(2000));
    looks()[0]!.resolve(fingerprint('old', 1000));
    await before;
    expect(await archive.changedAt()).toEqual(new Date(2000));
    expect(looks()).toHaveLength(2);
  });
});

describe('what is kept', () => {
  it('builds once per generation, drops everything when the fingerprint moves, and keeps no failed build', async () => {
    const { pool, looks } = fakePool();
    let now = 0;
    const archive = new PublicArchive(pool, () => now);
    let builds = 0;
    const build = async () => ++builds;
    const got = archive.get('feed', build);
    await tick();
    looks()[0]!.resolve(fingerprint('a', 1));
    expect(await got).toBe(1);
    expect(await archive.get('feed', build)).toBe(1);

    // The same fingerprint a second later: kept.
    now += FRESH_MS;
    const same = archive.get('feed', build);
    await tick();
    looks()[1]!.resolve(fingerprint('a', 1));
    expect(await same).toBe(1);

    // Another: built again.
    now += FRESH_MS;
    const moved = archive.get('feed', build);
    await tick();
    looks()[2]!.resolve(fingerprint('b', 2));
    expect(await moved).toBe(2);

    await expect(archive.get('list:', async () => Promise.reject(new Error('Postgres away')))).rejects.toThrow('Postgres away');
    expect(await archive.get('list:', build)).toBe(3);
  });

  it('knows only the slugs of the archive and those taken out of it', async () => {
    const { pool, asked, looks } = fakePool();
    const archive = new PublicArchive(pool, () => 0);
    const state = archive.slugState('draft-slug');
    await tick();
    looks()[0]!.resolve(fingerprint('a', 1));
    await tick();
    const slugs = asked.find((d) => d.sql.includes('AS in_archive'))!;
    slugs.resolve([
      { slug: 'live', in_archive: true },
      { slug: 'withdrawn', in_archive: false },
    ]);
    expect(await state).toBeUndefined();
    expect(await archive.slugState('live')).toBe(true);
    expect(await archive.slugState('withdrawn')).toBe(false);
  });
});

describe('validators', () => {
  it('matches If-None-Match (weakly, in a list, or *) before If-Modified-Since, at whole seconds', () => {
    const p = prepare('<p>hello</p>', new Date('2026-12-02T10:00:00.900Z'));
    expect(p.lastModified).toBe('Wed, 02 Dec 2026 10:00:00 GMT');
    expect(notModified({ 'if-none-match': p.etag }, p)).toBe(true);
    expect(notModified({ 'if-none-match': `"x", W/${p.etag}` }, p)).toBe(true);
    expect(notModified({ 'if-none-match': '*' }, p)).toBe(true);
    expect(notModified({ 'if-none-match': '"x"', 'if-modified-since': p.lastModified }, p)).toBe(false);
    expect(notModified({ 'if-modified-since': p.lastModified }, p)).toBe(true);
    expect(notModified({ 'if-modified-since': 'Wed, 02 Dec 2026 09:59:59 GMT' }, p)).toBe(false);
    expect(notModified({ 'if-modified-since': 'not a date' }, p)).toBe(false);
    expect(notModified({}, p)).toBe(false);
    expect(prepare('<p>hello!</p>', new Date(0)).etag).not.toBe(p.etag);
  });

  it('reads Accept-Encoding for gzip: named or *, not with q=0', () => {
    for (const yes of ['gzip', 'gzip, deflate, br', 'br;q=1.0, gzip;q=0.5', '*', 'br, *;q=0.1', 'x-gzip', 'GZIP'])
      expect([yes, acceptsGzip(yes)]).toEqual([yes, true]);
    for (const no of [undefined, '', 'br', 'identity', 'gzip;q=0', 'gzip; q=0.0, br', '*;q=0', 'gzip;q=0, *'])
      expect([no, acceptsGzip(no)]).toEqual([no, false]);
  });
});
