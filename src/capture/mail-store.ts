import { open, readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { simpleParser } from 'mailparser';

export type CapturedSummary = { id: string; subject: string; to: string; from: string; date: string };
export type CapturedMessage = CapturedSummary & { text: string; html: string | undefined; headers: [string, string][] };

const ID = /^\d{14}-[0-9a-f]{8}$/;

export function isCaptureId(id: string): boolean {
  return ID.test(id);
}

/** Read from each file to find its header block: more than any header we write. */
const HEAD_BYTES = 64 * 1024;

export type CapturedPage = {
  items: CapturedSummary[];
  /** The cursor of the next (older) page, or null on the last one. */
  older: string | null;
  /** How many messages match (all of them without a search). */
  matching: number;
};

/**
 * The capture server's mail directory, read for the operator's inbox: newest first, searched by
 * recipient or subject, a page at a time. A captured file never changes once renamed into place,
 * so each message's summary (parsed from its headers only) is kept once read: a search over
 * thousands of messages parses each one once per process.
 */
export class CapturedMail {
  private readonly summaries = new Map<string, CapturedSummary>();

  constructor(readonly dir: string) {}

  /** Ids of the stored messages, newest first (ids start with the capture time in ms). */
  private async ids(): Promise<string[]> {
    let files: string[];
    try {
      files = await readdir(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    const ids = files
      .filter((f) => f.endsWith('.eml'))
      .map((f) => f.slice(0, -4))
      .filter(isCaptureId)
      .sort()
      .reverse();
    // Forget what was deleted by hand, so the cache holds only what is on disk.
    if (this.summaries.size > ids.length) {
      const present = new Set(ids);
      for (const id of this.summaries.keys()) if (!present.has(id)) this.summaries.delete(id);
    }
    return ids;
  }

  private async summary(id: string): Promise<CapturedSummary | undefined> {
    const known = this.summaries.get(id);
    if (known) return known;
    let head: string;
    try {
      const file = await open(path.join(this.dir, `${id}.eml`));
      try {
        const buf = Buffer.alloc(HEAD_BYTES);
        const { bytesRead } = await file.read(buf, 0, HEAD_BYTES, 0);
        head = buf.subarray(0, bytesRead).toString('utf8');
      } finally {
        await file.close();
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    const end = /\r?\n\r?\n/.exec(head);
    const parsed = await simpleParser(`${end ? head.slice(0, end.index) : head}\r\n\r\n`);
    const s = summarise(id, parsed);
    this.summaries.set(id, s);
    return s;
  }

  /**
   * One page, newest first: messages older than `before` (an id), whose recipients or subject
   * contain `search` (case-insensitive), at most `limit`.
   */
  async page(opts: { search?: string; before?: string; limit: number }): Promise<CapturedPage> {
    let ids = await this.ids();
    const needle = opts.search?.trim().toLowerCase();
    let matching = ids.length;
    if (needle) {
      const all = await Promise.all(ids.map((id) => this.summary(id)));
      const hits = all.filter((s): s is CapturedSummary => s !== undefined && `${s.to}\n${s.subject}`.toLowerCase().includes(needle));
      ids = hits.map((s) => s.id);
      matching = ids.length;
    }
    const start = opts.before ? ids.findIndex((id) => id < opts.before!) : 0;
    const slice = start === -1 ? [] : ids.slice(start, start + opts.limit);
    const items = (await Promise.all(slice.map((id) => this.summary(id)))).filter((s): s is CapturedSummary => s !== undefined);
    const last = slice[slice.length - 1];
    const older = last !== undefined && start !== -1 && start + opts.limit < ids.length ? last : null;
    return { items, older, matching };
  }

  async read(id: string): Promise<CapturedMessage | undefined> {
    const raw = await this.raw(id);
    if (raw === undefined) return undefined;
    const parsed = await simpleParser(raw);
    const headers = parsed.headerLines.map((h) => {
      const colon = h.line.indexOf(':');
      return [h.line.slice(0, colon), h.line.slice(colon + 1).trim()] as [string, string];
    });
    return { ...summarise(id, parsed), text: parsed.text ?? '', html: parsed.html || undefined, headers };
  }

  /** The message as stored, byte for byte (for the .eml download). */
  async raw(id: string): Promise<Buffer | undefined> {
    if (!isCaptureId(id)) return undefined;
    try {
      return await readFile(path.join(this.dir, `${id}.eml`));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }
}

type Parsed = Awaited<ReturnType<typeof simpleParser>>;

function summarise(id: string, parsed: Parsed): CapturedSummary {
  return {
    id,
    subject: parsed.subject ?? '(no subject)',
    from: parsed.from?.text ?? '',
    to: Array.isArray(parsed.to) ? parsed.to.map((a) => a.text).join(', ') : (parsed.to?.text ?? ''),
    date: (parsed.date ?? new Date(Number(id.slice(0, 14)))).toISOString(),
  };
}
