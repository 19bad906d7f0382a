import { describe, expect, it } from '@jest/globals';
import { ImportTally, MAX_LISTED, REASON_MESSAGES } from '../../src/subscribers/import-report.js';

describe('ImportTally', () => {
  it("counts rows, acceptances and rejections by reason; a reason's own message unless one is given", () => {
    const tally = new ImportTally();
    for (let i = 0; i < 4; i++) tally.read();
    tally.accept();
    tally.reject(3, 'x@example.com', 'duplicate_in_file');
    tally.reject(4, 'nope', 'invalid_email', 'the address has no @');
    tally.reject(5, 'gone@example.com', 'unsubscribed');
    tally.settle();
    expect(tally.report).toEqual({
      rows: 4,
      accepted: 1,
      rejected: 3,
      rejectedByReason: { duplicate_in_file: 1, invalid_email: 1, unsubscribed: 1 },
      rejections: [
        { line: 3, email: 'x@example.com', reason: 'duplicate_in_file', message: REASON_MESSAGES.duplicate_in_file },
        { line: 4, email: 'nope', reason: 'invalid_email', message: 'the address has no @' },
        { line: 5, email: 'gone@example.com', reason: 'unsubscribed', message: REASON_MESSAGES.unsubscribed },
      ],
      rejectionsTruncated: false,
    });
  });

  it("lists refusals in line order when a batch's come after rows read later", () => {
    const tally = new ImportTally();
    // Read: rows 2-4 go to the batch, 5 is refused at once; the batch then refuses 3.
    tally.reject(5, 'bad', 'invalid_email', 'bad');
    tally.reject(3, 'old@example.com', 'bounced');
    tally.settle();
    tally.reject(7, 'later', 'invalid_email', 'bad');
    tally.settle();
    expect(tally.report.rejections.map((r) => r.line)).toEqual([3, 5, 7]);
  });

  it(`lists the first ${MAX_LISTED} by line, counts all, and keeps only what could still be listed waiting`, () => {
    const tally = new ImportTally();
    const waiting = () => (tally as unknown as { waiting: unknown[] }).waiting.length;
    let most = 0;
    // A million rows refused while reading, with no batch ever written in between.
    for (let line = 2; line < 1_000_002; line++) {
      tally.reject(line, `bad${line}`, 'invalid_email', 'bad');
      most = Math.max(most, waiting());
    }
    // Then the batch's one refusal, of an early line, which must still be listed.
    tally.reject(1, 'first@example.com', 'complained');
    tally.settle();
    expect(most).toBeLessThanOrEqual(2 * MAX_LISTED);
    expect(tally.report.rejected).toBe(1_000_001);
    expect(tally.report.rejectionsTruncated).toBe(true);
    expect(tally.report.rejections).toHaveLength(MAX_LISTED);
    expect(tally.report.rejections[0]).toMatchObject({ line: 1, reason: 'complained' });
    expect(tally.report.rejections.at(-1)!.line).toBe(MAX_LISTED);

    // Once the list is full, later refusals are counted and not listed.
    tally.reject(2_000_000, 'x', 'invalid_email', 'bad');
    tally.settle();
    expect(tally.report.rejections).toHaveLength(MAX_LISTED);
    expect(tally.report.rejected).toBe(1_000_002);
  });

  it('is not truncated at exactly the number it lists', () => {
    const tally = new ImportTally();
    for (let line = 2; line < MAX_LISTED + 2; line++) tally.reject(line, 'x', 'invalid_email', 'bad');
    tally.settle();
    expect(tally.report.rejections).toHaveLength(MAX_LISTED);
    expect(tally.report.rejectionsTruncated).toBe(false);
  });
});
