import type { Readable } from 'node:stream';
import type { Pool } from '../db/pool.js';
import { AppError, PayloadTooLarge } from '../errors.js';
import { unguardFormula } from './csv-export.js';
import { csvRows, UnreadableCsv, type CsvRow } from './csv-rows.js';
import { checkEmail, cleanName } from './email-address.js';
import { ImportTally, type ImportReport, type RejectReason } from './import-report.js';
import { importSubscribers, type ImportCandidate } from './queries.js';
import { SeenAddresses } from './seen-addresses.js';

export type { ImportReport, RejectedRow, RejectReason } from './import-report.js';

const BATCH = 1000;

/** Values of an optional `status` column (as in our own export) that forbid adding the row. */
const REFUSED_STATUSES = new Set<RejectReason>(['pending', 'unsubscribed', 'bounced', 'complained']);

function requireEmailColumn(columns: string[] | undefined): void {
  if (!columns) throw new AppError(400, 'invalid_csv', 'the CSV is empty: it needs a header row with an "email" column (and optionally "name")');
  if (!columns.includes('email')) throw new AppError(400, 'invalid_csv', 'the first row must be a header with an "email" column (and optionally "name")');
}

/** A row as a reader to add, or why it cannot be one; `seen` remembers its address. */
function candidateOf({ record }: CsvRow, seen: SeenAddresses): ImportCandidate | { reason: RejectReason; message?: string } {
  // An export writes `=1+1@example.com` as `'=1+1@example.com` (see guardFormula).
  const checked = checkEmail(unguardFormula(record.email ?? ''));
  if (!checked.ok) return { reason: 'invalid_email', message: checked.reason };
  if (!seen.add(checked.normalized)) return { reason: 'duplicate_in_file' };
  const status = record.status?.toLowerCase() as RejectReason | undefined;
  if (status && REFUSED_STATUSES.has(status)) return { reason: status };
  return { email: checked.email, normalized: checked.normalized, name: cleanName(record.name === undefined ? undefined : unguardFormula(record.name)) };
}

/**
 * Streams a CSV (header row with an `email` column, optional `name` and `status`) into the
 * subscriber list in batches of 1,000 rows: memory stays flat whatever the file size. Reports
 * every rejected row with the line on which it starts.
 */
export async function importCsv(pool: Pool, input: Readable, consent: { at: Date | null; ip: string | null; userAgent: string | null }): Promise<ImportReport> {
  const tally = new ImportTally();
  const seen = new SeenAddresses();
  let batch: (ImportCandidate & { line: number })[] = [];
  const write = async () => {
    if (batch.length > 0) {
      const outcome = await importSubscribers(pool, batch, { source: 'import', ...consent });
      for (const row of batch) {
        if (outcome.accepted.has(row.normalized)) tally.accept();
        else tally.reject(row.line, row.email, outcome.refused.get(row.normalized)!);
      }
      batch = [];
    }
    tally.settle();
  };

  try {
    for await (const row of csvRows(input, requireEmailColumn)) {
      tally.read();
      const candidate = candidateOf(row, seen);
      if ('reason' in candidate) tally.reject(row.line, row.record.email ?? '', candidate.reason, candidate.message);
      else {
        batch.push({ ...candidate, line: row.line });
        if (batch.length >= BATCH) await write();
      }
    }
    await write();
  } catch (err) {
    // The rows read before the fault are all written, so the partial report describes exactly
    // the first `rows` rows of the file.
    if (err instanceof UnreadableCsv) {
      await write();
      throw new AppError(400, 'invalid_csv', `the CSV could not be read after ${tally.report.rows} rows: ${err.message}`, { partial: tally.report });
    }
    if (err instanceof PayloadTooLarge) {
      await write();
      throw new PayloadTooLarge(err.message, { partial: tally.report });
    }
    throw err;
  }
  return tally.report;
}
