import type { ImportRefusal } from './queries.js';

/**
 * Why a row was not added. `pending`: the file's own `status` column says the reader never
 * confirmed (an export of a list, re-imported); importing them as active would skip their
 * double opt-in.
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

/** How many rejections a report lists (all are counted). */
export const MAX_LISTED = 1000;

/** What each reason means, for the report (an invalid address says what is wrong with it). */
export const REASON_MESSAGES: Record<Exclude<RejectReason, 'invalid_email'>, string> = {
  duplicate_in_file: 'the address appears earlier in the file',
  already_active: 'already subscribed',
  pending: 'the file marks this reader as not confirmed: an import never skips the double opt-in',
  unsubscribed: 'the reader unsubscribed: an import never re-subscribes anyone',
  bounced: 'the address bounced and is suppressed',
  complained: 'the reader complained and is suppressed',
  erased: 'the reader asked to be erased and is suppressed',
};

/**
 * An import's report as its rows are decided. Rows refused while reading are known at once, those
 * the database refuses only when their batch is written, so a refusal waits until `settle()`:
 * called once every row read so far is decided, it lists the waiting ones in line order. Only the
 * lowest lines that could still be listed are kept waiting: memory stays bounded however many
 * rows are refused.
 */
export class ImportTally {
  readonly report: ImportReport = { rows: 0, accepted: 0, rejected: 0, rejectedByReason: {}, rejections: [], rejectionsTruncated: false };
  private waiting: RejectedRow[] = [];

  /** A row was read (it will be accepted or rejected). */
  read(): void {
    this.report.rows++;
  }

  accept(): void {
    this.report.accepted++;
  }

  reject(line: number, email: string, reason: RejectReason, message = REASON_MESSAGES[reason as Exclude<RejectReason, 'invalid_email'>]): void {
    this.report.rejected++;
    this.report.rejectedByReason[reason] = (this.report.rejectedByReason[reason] ?? 0) + 1;
    this.waiting.push({ line, email: email.slice(0, 320), reason, message });
    if (this.waiting.length >= 2 * Math.max(this.room(), 1)) this.keepLowest();
  }

  /** Every row read so far is decided: list the waiting rejections. */
  settle(): void {
    this.keepLowest();
    this.report.rejections.push(...this.waiting);
    this.waiting = [];
  }

  private room(): number {
    return MAX_LISTED - this.report.rejections.length;
  }

  private keepLowest(): void {
    this.waiting.sort((a, b) => a.line - b.line);
    if (this.waiting.length > this.room()) {
      this.waiting.length = this.room();
      this.report.rejectionsTruncated = true;
    }
  }
}
