import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import type { Pool } from '../db/pool.js';
import { archiveFingerprint, archiveSlugs, type ArchiveFingerprint } from './queries.js';

/**
 * The public archive's answers (an issue's web version, the archive list, the feed) as bytes,
 * prepared once per change of the archive and kept in this process, each with its ETag and
 * Last-Modified, so that a popular issue is served from memory rather than rebuilt from Postgres
 * on every request.
 *
 * What keeps them right, in every API process behind a load balancer:
 *  - before serving, the process makes sure it looked at the archive's fingerprint (one
 *    aggregate over the issues that are or were public: archiveFingerprint) less than
 *    FRESH_MS ago; when the fingerprint moved, everything prepared is dropped. At most one such
 *    statement a second per process, none while nobody reads. A change committed by another
 *    process is therefore served at most FRESH_MS (plus one statement) after its commit.
 *  - the process that makes a change (the editor API: a publish, a correction, an unpublish, a
 *    send that publishes, a cancel that takes back) calls changed() before it answers: the next
 *    request looks at the fingerprint again first, so the change shows at once.
 *  - what a build read from Postgres before a change is never kept after it: the builds of a
 *    generation live in that generation's map, which a change replaces.
 *
 * Drafts never get in: only slugs of the archive (and, for their 410, of issues taken out of it)
 * have entries at all; any other slug is a 404 without a statement.
 */
export const FRESH_MS = 1000;

/** At most this many prepared answers (issue pages, archive list pages) per process; the oldest go first. */
const MAX_ENTRIES = 256;

/** One prepared representation: the bytes and their validators. */
export type Prepared = {
  body: Buffer;
  /** A strong validator: the same bytes give the same tag in every process. */
  etag: string;
  /** The same, gzipped once here (the sample issue's 21 KB web version: 8.6 KB), with a tag of its own. */
  gzip?: { body: Buffer; etag: string };
  /** An HTTP date, whole seconds. */
  lastModified: string;
};

export function prepare(body: string, modifiedAt: Date): Prepared {
  const bytes = Buffer.from(body, 'utf8');
  const hash = createHash('sha256').update(bytes).digest('base64url').slice(0, 32);
  const zipped = gzipSync(bytes, { level: 9 });
  return {
    body: bytes,
    etag: `"${hash}"`,
    ...(zipped.length < bytes.length ? { gzip: { body: zipped, etag: `"${hash}-gzip"` } } : {}),
    lastModified: modifiedAt.toUTCString(),
  };
}

/** Whether Accept-Encoding takes gzip (named, or `*`, with a q above 0). */
export function acceptsGzip(header: string | undefined): boolean {
  if (!header) return false;
  let star = false;
  for (const part of header.split(',')) {
    const [coding, ...params] = part.trim().toLowerCase().split(';');
    const q = params.map((p) => /^\s*q\s*=\s*([\d.]+)\s*$/.exec(p)?.[1]).find((v) => v !== undefined);
    const wanted = q === undefined || Number(q) > 0;
    if (coding === 'gzip' || coding === 'x-gzip') return wanted;
    if (coding === '*') star = wanted;
  }
  return star;
}

/**
 * Whether the client's copy is this one (RFC 9110 §13.1): If-None-Match when given (weak
 * comparison, as for GET), else If-Modified-Since at the HTTP date's resolution of one second.
 */
export function notModified(headers: { 'if-none-match'?: string; 'if-modified-since'?: string }, p: Pick<Prepared, 'etag' | 'lastModified'>): boolean {
  const inm = headers['if-none-match'];
  if (inm !== undefined) {
    if (inm.trim() === '*') return true;
    return inm.split(',').some((tag) => tag.trim().replace(/^W\//, '') === p.etag);
  }
  const ims = headers['if-modified-since'];
  if (ims === undefined) return false;
  const since = Date.parse(ims);
  return !Number.isNaN(since) && Date.parse(p.lastModified) <= since;
}

type Generation = {
  fingerprint: ArchiveFingerprint;
  /** Slug → whether it is in the archive (true) or was taken out of it (false: 410). */
  slugs?: Promise<Map<string, boolean>>;
  entries: Map<string, Promise<unknown>>;
};

export class PublicArchive {
  private generation: Generation | undefined;
  /** When the last look at the fingerprint began (a change committed before then is in it). */
  private checkedAt = 0;
  /** Looks are numbered as they begin; only one later than the last applied one is applied. */
  private looks = 0;
  private applied = 0;
  /** Bumped by changed(); a look counts only if it began after the last bump. */
  private asked = 0;
  private checkedFor = -1;
  private checking: { forAsked: number; done: Promise<Generation> } | undefined;

  constructor(
    private readonly pool: Pool,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** This process changed an issue: look at the archive again before the next answer. */
  changed(): void {
    this.asked++;
  }

  /** The current generation, after a look at the fingerprint when the last is too old or a change was made since. */
  private current(): Generation | Promise<Generation> {
    const g = this.generation;
    if (g && this.checkedFor === this.asked && this.now() - this.checkedAt < FRESH_MS) return g;
    if (this.checking && this.checking.forAsked === this.asked) return this.checking.done;
    const forAsked = this.asked;
    const startedAt = this.now();
    const look = ++this.looks;
    const entry: { forAsked: number; done?: Promise<Generation> } = { forAsked };
    entry.done = (async () => {
      try {
        const fingerprint = await archiveFingerprint(this.pool);
        // A look that began before a later one finished must not undo it.
        if (look > this.applied) {
          this.applied = look;
          if (!this.generation || this.generation.fingerprint.hash !== fingerprint.hash) {
            this.generation = { fingerprint, entries: new Map() };
          }
          this.checkedAt = startedAt;
          this.checkedFor = Math.max(this.checkedFor, forAsked);
        }
        return this.generation!;
      } finally {
        if (this.checking === entry) this.checking = undefined;
      }
    })();
    this.checking = entry as { forAsked: number; done: Promise<Generation> };
    return entry.done;
  }

  /** When the archive last changed, as far as the current fingerprint says (the Last-Modified of lists). */
  async changedAt(): Promise<Date> {
    return (await this.current()).fingerprint.changedAt;
  }

  /** Whether the slug is in the archive (true), was taken out (false), or is no public issue at all (undefined). */
  async slugState(slug: string): Promise<boolean | undefined> {
    const g = await this.current();
    if (!g.slugs) {
      const slugs = archiveSlugs(this.pool);
      g.slugs = slugs;
      slugs.catch(() => {
        if (g.slugs === slugs) g.slugs = undefined;
      });
    }
    return (await g.slugs).get(slug);
  }

  /**
   * What `build` prepares for `key` in the current generation, built once (concurrent requests
   * wait for the same build); a failed build is not kept. `build` gets the fingerprint it is
   * built under.
   */
  async get<T>(key: string, build: (f: ArchiveFingerprint) => Promise<T>): Promise<T> {
    const g = await this.current();
    const known = g.entries.get(key) as Promise<T> | undefined;
    if (known) return known;
    const built = build(g.fingerprint);
    if (g.entries.size >= MAX_ENTRIES) g.entries.delete(g.entries.keys().next().value!);
    g.entries.set(key, built);
    built.catch(() => {
      if (g.entries.get(key) === built) g.entries.delete(key);
    });
    return built;
  }
}
