import type { Readable } from 'node:stream';
import { parse } from 'csv-parse';
import type { Pool } from '../db/pool.js';
import { AppError } from '../errors.js';
import { checkEmail, cleanName } from './email-address.js';
import { importSubscribers, type ImportCandidate, type ImportRefusal } from './queries.js';

export type RejectReason = 'invalid_email' | 'duplicate_in_file' | ImportRefusal;
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
  unsubscribed: 'the reader unsubscribed: an import never re-subscribes anyone',
  bounced: 'the address bounced and is suppressed',
  complained: 'the reader complained and is suppressed',
  erased: 'the reader asked to be erased and is suppressed',
};

/**
 * Streams a CSV (header row with an `email` column, optional `name`) into the subscriber list in
 * batches of 1,000 rows: memory stays flat whatever the file size. Reports every rejected row.
 */
export async function importCsv(
  pool: Pool,
  input: Readable,
  consent: { at: Date | null; ip: string | null; userAgent: string | null },
): Promise<ImportReport> {
  const report: ImportReport = { rows: 0, accepted: 0, rejected: 0, rejectedByReason: {}, rejections: [], rejectionsTruncated: false };
  const reject = (line: number, email: string, reason: RejectReason, message: string) => {
    report.rejected++;
    report.rejectedByReason[reason] = (report.rejectedByReason[reason] ?? 0) + 1;
    if (report.rejections.length < MAX_LISTED) report.rejections.push({ line, email: email.slice(0, 320), reason, message });
    else report.rejectionsTruncated = true;
  };

  let batch: (ImportCandidate & { line: number })[] = [];
  let seenInBatch = new Set<string>();
  const flush = async () => {
    if (batch.length === 0) return;
    const outcome = await importSubscribers(pool, batch, { source: 'import', ...consent });
    for (const row of batch) {
      if (outcome.accepted.has(row.normalized)) report.accepted++;
      else {
        const reason = outcome.refused.get(row.normalized) ?? 'already_active';
        reject(row.line, row.email, reason, MESSAGES[reason]);
      }
    }
    batch = [];
    seenInBatch = new Set();
  };

  const parser = input.pipe(
    parse({ columns: (header: string[]) => header.map((h) => h.trim().toLowerCase()), bom: true, skip_empty_lines: true, trim: true, relax_column_count: true, max_record_size: 64 * 1024 }),
  );
  input.on('error', (err) => parser.destroy(err));
  let checkedHeader = false;
  try {
    for await (const record of parser as AsyncIterable<Record<string, string | undefined>>) {
      if (!checkedHeader) {
        if (!('email' in record)) throw new AppError(400, 'invalid_csv', 'the first row must be a header with an "email" column (and optionally "name")');
        checkedHeader = true;
      }
      report.rows++;
      const line = parser.info.lines;
      const raw = record.email ?? '';
      const checked = checkEmail(raw);
      if (!checked.ok) {
        reject(line, raw, 'invalid_email', checked.reason);
        continue;
      }
      // Within a batch a repeat is caught here; across batches the first copy is already in the
      // table, so the repeat is reported as already subscribed.
      if (seenInBatch.has(checked.normalized)) {
        reject(line, raw, 'duplicate_in_file', MESSAGES.duplicate_in_file);
        continue;
      }
      seenInBatch.add(checked.normalized);
      batch.push({ email: checked.email, normalized: checked.normalized, name: cleanName(record.name), line });
      if (batch.length >= BATCH) await flush();
    }
    await flush();
  } catch (err) {
    if (err instanceof AppError) throw err;
    const code = (err as { code?: string }).code;
    if (code === 'PAYLOAD_TOO_LARGE') throw new AppError(413, 'payload_too_large', (err as Error).message);
    if (typeof code === 'string' && code.startsWith('CSV_')) {
      throw new AppError(400, 'invalid_csv', `the CSV could not be read after ${report.rows} rows: ${(err as Error).message}`, { partial: report });
    }
    throw err;
  }
  return report;
}
