// The filesystem media store on its own: atomic, content-addressed writes in a real directory.
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { FsMediaStore } from '../../src/media/store.js';

let dir: string;
let store: FsMediaStore;

beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'broadside-media-'));
  store = new FsMediaStore(path.join(dir, 'media'));
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const NAME = `${'ab'.repeat(32)}.png`;

describe('FsMediaStore', () => {
  it('stores bytes under a name once; a second put of the name reports it was there', async () => {
    const bytes = randomBytes(1000);
    expect(await store.put(NAME, bytes)).toEqual({ created: true });
    expect(await store.put(NAME, bytes)).toEqual({ created: false });
    expect(await readdir(path.join(dir, 'media'))).toEqual([NAME]);
    const got = await store.get(NAME);
    expect(got?.bytes).toBe(1000);
    const chunks: Buffer[] = [];
    for await (const c of got!.stream()) chunks.push(c as Buffer);
    expect(Buffer.concat(chunks).equals(bytes)).toBe(true);
  });

  it('never shows a name before its whole content is there, and of many puts at once exactly one stores', async () => {
    const bytes = randomBytes(8 * 1024 * 1024);
    const seen: number[] = [];
    let done = false;
    // A reader polling the name while eight writers race: whenever the name exists, it is whole.
    const watcher = (async () => {
      // Until the writers are done and the name has been seen at least once.
      while (!done || seen.length === 0) {
        const size = await store.size(NAME);
        if (size !== undefined) seen.push(size);
        await new Promise((r) => setImmediate(r));
      }
    })();
    const results = await Promise.all(Array.from({ length: 8 }, () => store.put(NAME, bytes)));
    done = true;
    await watcher;
    expect(results.filter((r) => r.created)).toHaveLength(1);
    expect(seen.length).toBeGreaterThan(0);
    expect(seen.every((s) => s === bytes.length)).toBe(true);
    expect(await readdir(path.join(dir, 'media'))).toEqual([NAME]);
    expect((await readFile(path.join(dir, 'media', NAME))).equals(bytes)).toBe(true);
  });

  it('answers undefined for a name it does not hold, and refuses names that are paths', async () => {
    expect(await store.get(NAME)).toBeUndefined();
    expect(await store.size(NAME)).toBeUndefined();
    for (const bad of ['../secrets.json', 'a/b.png', '.tmp-1', '', '..', 'x'.repeat(101)]) {
      await expect(store.size(bad)).rejects.toThrow(/not a media name/);
      await expect(store.put(bad, Buffer.from('x'))).rejects.toThrow(/not a media name/);
    }
  });
});
