import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { link, mkdir, open, rename, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';

/** A stored object: its size, and its bytes on demand (a HEAD request reads none). */
export type StoredObject = { bytes: number; stream(): Readable };

/**
 * Where uploaded media live. Objects are content-addressed (`<sha256>.<ext>`) and immutable:
 * a name, once stored, always holds the same bytes, and nothing is ever rewritten. The routes
 * know only this interface; the filesystem store below is the one there is, and an
 * S3-compatible one (PUT with If-None-Match: *, GET, HEAD) would implement the same three calls.
 */
export interface MediaStore {
  /** Stores the bytes under `name` unless that name is stored already; `created` says which. */
  put(name: string, bytes: Buffer): Promise<{ created: boolean }>;
  /** The object, or undefined when nothing is stored under that name. */
  get(name: string): Promise<StoredObject | undefined>;
  /** The size of the object in bytes, or undefined when nothing is stored under that name. */
  size(name: string): Promise<number | undefined>;
}

/** A name the stores accept: a file name of letters, digits, dots and dashes, never a path. */
const SAFE_NAME = /^[0-9a-z][0-9a-z.-]{0,99}$/;

function checkName(name: string): string {
  if (!SAFE_NAME.test(name) || name.includes('..')) throw new Error(`not a media name: ${JSON.stringify(name.slice(0, 120))}`);
  return name;
}

const isMissing = (err: unknown) => (err as NodeJS.ErrnoException).code === 'ENOENT';

/**
 * Media as files in one directory (DATA_DIR/media). A new object is written to a temporary file
 * in the same directory, flushed, and then hard-linked to its name, which fails if the name
 * exists: the name appears whole or not at all, a half-written file is never visible under it,
 * and of two uploads of the same bytes at once exactly one stores them. On a filesystem without
 * hard links, rename does the same (atomically; both callers then report `created`).
 * Temporary files start with a dot, so no media name can ever reach one.
 */
export class FsMediaStore implements MediaStore {
  constructor(readonly dir: string) {}

  async put(name: string, bytes: Buffer): Promise<{ created: boolean }> {
    const target = path.join(this.dir, checkName(name));
    if ((await this.size(name)) !== undefined) return { created: false };
    await mkdir(this.dir, { recursive: true });
    const temp = path.join(this.dir, `.tmp-${randomBytes(12).toString('hex')}`);
    const handle = await open(temp, 'wx', 0o644);
    try {
      await handle.writeFile(bytes);
      await handle.sync();
    } catch (err) {
      await handle.close();
      await unlink(temp).catch(() => {});
      throw err;
    }
    await handle.close();
    try {
      await link(temp, target);
      return { created: true };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') return { created: false };
      await rename(temp, target);
      return { created: true };
    } finally {
      await unlink(temp).catch(() => {});
    }
  }

  async get(name: string): Promise<StoredObject | undefined> {
    const file = path.join(this.dir, checkName(name));
    const bytes = await this.size(name);
    if (bytes === undefined) return undefined;
    return { bytes, stream: () => createReadStream(file) };
  }

  async size(name: string): Promise<number | undefined> {
    try {
      const s = await stat(path.join(this.dir, checkName(name)));
      return s.isFile() ? s.size : undefined;
    } catch (err) {
      if (isMissing(err)) return undefined;
      throw err;
    }
  }
}
