import { hash } from 'node:crypto';
import { pipeline, Transform, type Readable } from 'node:stream';
import { CsvError, Parser, type Info } from 'csv-parse';
import type { Pool } from '../db/pool.js';
import { AppError } from '../errors.js';
import { unguardFormula } from './csv-export.js';
import { checkEmail, cleanName } from './email-address.js';
import { importSubscribers, type ImportCandidate, type ImportRefusal } from './queries.js';

/**
 * `pending`: the file's own `status` column says the reader never confirmed (an export of a
 * list, re-imported); importing them as active would skip their double opt-in.
 */
export type RejectReason = 'invalid_email' | 'duplicate_in_file' | 'pending' | ImportRefusal;
export type RejectedRow = { line: number; email: string; reason: RejectReason; message: string };
export type ImportReport = {
  rows: number;
  accepted: number;
  rejected: number;
  rejectedByReason: Partial<Record<RejectReason, number>>;
  /** The first rejections in file order, with line numbers; the counts above are complete. */
  rejections: RejectedRow[];
  rejectionsTruncated: boolean;
};

const BATCH = 1000;
const MAX_LISTED = 1000;

const MESSAGES: Record<Exclude<RejectReason, 'invalid_email'>, string> = {
  duplicate_in_file: 'the address appears earlier in the file',
  already_active: 'already subscribed',
  pending: 'the file marks this reader as not confirmed: an import never skips the double opt-in',
  unsubscribed: 'the reader unsubscribed: an import never re-subscribes anyone',
  bounced: 'the address bounced and is suppressed',
  complained: 'the reader complained and is suppressed',
  erased: 'the reader asked to be erased and is suppressed',
};

/** Values of an optional `status` column (as in our own export) that forbid adding the row. */
const REFUSED_STATUSES = new Set<RejectReason>(['pending', 'unsubscribed', 'bounced', 'complained']);

const CR = 0x0d;
const LF = 0x0a;

/**
 * Turns CRLF and lone CR line endings into LF. csv-parse counts a CRLF inside a quoted field as
 * two lines, which would shift every later line number; with LF only its count is exact.
 * Byte-wise is safe: CR and LF never occur inside a multi-byte UTF-8 sequence.
 */
function lineEndingsToLf(): Transform {
  let crAtEnd = false;
  return new Transform({
    transform(chunk: Buffer, _encoding, cb) {
      if (!crAtEnd && chunk.indexOf(CR) === -1) return cb(null, chunk);
      const out = Buffer.allocUnsafe(chunk.length + 1);
      let j = 0;
      let i = 0;
      if (crAtEnd) {
        out[j++] = LF;
        if (chunk[0] === LF) i = 1;
        crAtEnd = false;
      }
      for (; i < chunk.length; i++) {
        const b = chunk[i]!;
        if (b !== CR) out[j++] = b;
        else if (i === chunk.length - 1) crAtEnd = true;
        else {
          out[j++] = LF;
          if (chunk[i + 1] === LF) i++;
        }
      }
      cb(null, out.subarray(0, j));
    },
    flush(cb) {
      cb(null, crAtEnd ? Buffer.from([LF]) : undefined);
    },
  });
}

/**
 * Every address seen in one file, kept as a 64-bit fingerprint in an open-addressing table at
 * most half full (16 to 32 bytes per address: 2 MB for 100,000), so a repeat is recognised
 * anywhere in the file, not only within its batch, without holding the addresses themselves.
 * Two different addresses share a fingerprint with probability about n²/2⁶⁵ (3·10⁻⁸ for a
 * million rows); the later one would then be reported as a repeat.
 */
class SeenAddresses {
  private hi = new Uint32Array(4096);
  private lo = new Uint32Array(4096);
  private size = 0;

  /** Adds the address; false when it was already there. */
  add(normalized: string): boolean {
    const digest = hash('sha256', normalized, 'buffer');
    const h = digest.readUInt32LE(0);
    // 0/0 marks an empty slot.
    const l = digest.readUInt32LE(4) || 1;
    if ((this.size + 1) * 2 > this.hi.length) this.grow();
    if (!this.insert(h, l)) return false;
    this.size++;
    return true;
  }

  private insert(h: number, l: number): boolean {
    const mask = this.hi.length - 1;
    for (let i = l & mask; ; i = (i + 1) & mask) {
      if (this.lo[i] === 0) {
        this.hi[i] = h;
        this.lo[i] = l;
        return true;
      }
      if (this.lo[i] === l && this.hi[i] === h) return false;
    }
  }

  private grow(): void {
    const { hi, lo } = this;
    this.hi = new Uint32Array(hi.length * 2);
    this.lo = new Uint32Array(lo.length * 2);
    for (let i = 0; i < hi.length; i++) if (lo[i] !== 0) this.insert(hi[i]!, lo[i]!);
  }
}

type Parsed = { record: Record<string, string | undefined>; info: Info } | { error: Error };

/**
 * csv-parse fails by destroying its stream, which throws away the records it parsed ahead of the
 * fault. This one hands the fault over in order, after those records, so every row before a
 * malformed one is imported and reported.
 */
class InOrderParser extends Parser {
  override _transform(chunk: Buffer, encoding: BufferEncoding, callback: (err?: Error | null) => void): void {
    super._transform(chunk, encoding, (err?: Error | null) => this.handOver(err, callback));
  }

  override _flush(callback: (err?: Error | null) => void): void {
    super._flush((err?: Error | null) => this.handOver(err, callback));
  }

  private handOver(err: Error | null | undefined, callback: (err?: Error | null) => void): void {
    if (!err) return callback(err);
    this.push({ error: err });
    this.push(null);
    callback();
  }
}

/**
 * Streams a CSV (header row with an `email` column, optional `name` and `status`) into the
 * subscriber list in batches of 1,000 rows: memory stays flat whatever the file size. Reports
 * every rejected row with the line (1-based, physical) on which it starts.
 */
export async function importCsv(
  pool: Pool,
  input: Readable,
  consent: { at: Date | null; ip: string | null; userAgent: string | null },
): Promise<ImportReport> {
  const report: ImportReport = { rows: 0, accepted: 0, rejected: 0, rejectedByReason: {}, rejections: [], rejectionsTruncated: false };
  const room = () => MAX_LISTED - report.rejections.length;
  const rejection = (line: number, email: string, reason: RejectReason, message: string): RejectedRow => {
    report.rejected++;
    report.rejectedByReason[reason] = (report.rejectedByReason[reason] ?? 0) + 1;
    return { line, email: email.slice(0, 320), reason, message };
  };

  // Rows refused while reading are known at once, those the database refuses only when their
  // batch is written: both wait here and are listed together, in line order, at the flush. Only
  // as many wait as could still be listed (a later line can never displace an earlier one).
  let listed: RejectedRow[] = [];
  const rejectNow = (line: number, email: string, reason: RejectReason, message: string) => {
    const row = rejection(line, email, reason, message);
    if (listed.length < room()) listed.push(row);
    else report.rejectionsTruncated = true;
  };

  let batch: (ImportCandidate & { line: number })[] = [];
  const flush = async () => {
    if (batch.length > 0) {
      const outcome = await importSubscribers(pool, batch, { source: 'import', ...consent });
      for (const row of batch) {
        if (outcome.accepted.has(row.normalized)) report.accepted++;
        else {
          const reason = outcome.refused.get(row.normalized)!;
          listed.push(rejection(row.line, row.email, reason, MESSAGES[reason]));
        }
      }
      batch = [];
    }
    listed.sort((a, b) => a.line - b.line);
    const take = room();
    if (listed.length > take) report.rejectionsTruncated = true;
    report.rejections.push(...listed.slice(0, take));
    listed = [];
  };

  // Where the header ended: lines are counted from there, because the parser reads ahead of the
  // loop (its own `info.lines` is already past the record being handled).
  let header: { columns: string[]; lines: number; emptyLines: number } | undefined;
  const parser: Parser = new InOrderParser({
    columns: (names: string[]) => {
      const columns = names.map((h) => h.trim().toLowerCase());
      header = { columns, lines: parser.info.lines, emptyLines: parser.info.empty_lines };
      return columns;
    },
    bom: true,
    info: true,
    skip_empty_lines: true,
    trim: true,
    // `Dwayne "The Rock" Johnson` unquoted is what spreadsheets write and read back as is.
    relax_quotes: true,
    relax_column_count: true,
    max_record_size: 64 * 1024,
  });
  pipeline(input, lineEndingsToLf(), parser, () => {});

  const seen = new SeenAddresses();
  let lastLine = 0;
  let lastEmptyLines = 0;
  try {
    for await (const parsed of parser as AsyncIterable<Parsed>) {
      if ('error' in parsed) throw parsed.error;
      const { record, info } = parsed;
      if (report.rows === 0) {
        if (!header!.columns.includes('email')) break;
        lastLine = header!.lines;
        lastEmptyLines = header!.emptyLines;
      }
      report.rows++;
      // A record starts after the previous one and the blank lines skipped since; `info.lines`
      // is the line it ends on (quoted fields may span lines).
      const line = lastLine + 1 + (info.empty_lines - lastEmptyLines);
      lastLine = info.lines;
      lastEmptyLines = info.empty_lines;

      const raw = record.email ?? '';
      // An export writes `=1+1@example.com` as `'=1+1@example.com` (see guardFormula).
      const checked = checkEmail(unguardFormula(raw));
      if (!checked.ok) {
        rejectNow(line, raw, 'invalid_email', checked.reason);
        continue;
      }
      if (!seen.add(checked.normalized)) {
        rejectNow(line, raw, 'duplicate_in_file', MESSAGES.duplicate_in_file);
        continue;
      }
      const status = record.status?.toLowerCase() as RejectReason | undefined;
      if (status && REFUSED_STATUSES.has(status)) {
        rejectNow(line, raw, status, MESSAGES[status as Exclude<RejectReason, 'invalid_email'>]);
        continue;
      }
      batch.push({ email: checked.email, normalized: checked.normalized, name: cleanName(record.name === undefined ? undefined : unguardFormula(record.name)), line });
      if (batch.length >= BATCH) await flush();
    }
    if (!header) throw new AppError(400, 'invalid_csv', 'the CSV is empty: it needs a header row with an "email" column (and optionally "name")');
    if (!header.columns.includes('email')) {
      throw new AppError(400, 'invalid_csv', 'the first row must be a header with an "email" column (and optionally "name")');
    }
    await flush();
  } catch (err) {
    if (err instanceof AppError) throw err;
    const code = (err as { code?: string }).code;
    // Not every csv-parse code starts with CSV_ (INVALID_OPENING_QUOTE does not).
    const unreadable = err instanceof CsvError;
    // The rows handled before the fault are all written, so the partial report describes exactly
    // the first `rows` rows of the file.
    if (unreadable || code === 'PAYLOAD_TOO_LARGE') await flush();
    if (code === 'PAYLOAD_TOO_LARGE') throw new AppError(413, 'payload_too_large', (err as Error).message, { partial: report });
    if (unreadable) throw new AppError(400, 'invalid_csv', `the CSV could not be read after ${report.rows} rows: ${(err as Error).message}`, { partial: report });
    if (code === 'UPLOAD_ABORTED') throw new AppError(400, 'upload_aborted', (err as Error).message);
    throw err;
  }
  return report;
}
