import type { Container } from '../container.js';
import type { LogLines } from '../log.js';
import { SmtpUtf8Unavailable, smtpResponseCode } from '../delivery/mailer.js';
import { AppError, invalidInput } from '../errors.js';
import { CopyMaker } from '../delivery/prepare-copy.js';
import { sampleReaderVars } from '../rendering/issue.js';
import { checkEmail } from '../subscribers/email-address.js';
import type { IssueRow } from './queries.js';

export const TEST_RECIPIENTS_MAX = 10;

export type TestCopyResult = { to: string; status: 'submitted' | 'rejected'; response: string };

/** The preview's and the test copy's personalisation: a sample reader, links that lead nowhere. */
export function previewVars(c: Pick<Container, 'config' | 'links'>, issue: Pick<IssueRow, 'published_at'>) {
  return sampleReaderVars(
    { newsletter: c.config.newsletterName, publicUrl: c.config.publicUrl, postalAddress: c.config.postalAddress ?? '' },
    issue.published_at ?? new Date(),
  );
}

/**
 * Sends a test copy of an issue now, straight through the mailer (no queue, no message row: it is
 * not part of any send), built by the code that builds a reader's copy (CopyMaker): the same bytes
 * but for the sample reader's values and the marker (`[Test] ` before the subject, an
 * `X-Broadside-Test: yes` header, `test` for the send in the Feedback-ID, no message token).
 */
export async function sendTestCopies(
  c: Pick<Container, 'config' | 'links' | 'log' | 'mailer' | 'messageTokens'>,
  issue: IssueRow,
  recipients: string[],
  log: LogLines = c.log,
): Promise<TestCopyResult[]> {
  const checked = recipients.map((r) => ({ given: r, result: checkEmail(r) }));
  const invalid = checked.filter((x) => !x.result.ok).map((x) => x.given);
  if (invalid.length > 0) throw invalidInput(`not a valid address: ${invalid.join(', ')}`, { field: 'to', invalid });
  // One copy per address, however it is spelled (Ann@Example.com and ann@example.com).
  const byNormalized = new Map<string, string>();
  for (const x of checked) if (x.result.ok && !byNormalized.has(x.result.normalized)) byNormalized.set(x.result.normalized, x.result.email);
  const addresses = [...byNormalized.values()];
  if (addresses.length === 0) throw invalidInput('to must list at least one address', { field: 'to' });
  if (addresses.length > TEST_RECIPIENTS_MAX) throw invalidInput(`a test goes to at most ${TEST_RECIPIENTS_MAX} addresses`, { field: 'to' });
  // Built as a reader's copy is (prepare-copy.ts), with the sample reader's values and the marker.
  const { greeting, unsubscribe_url, manage_url } = previewVars(c, issue);
  const copies = new CopyMaker(c);
  const mime = copies.forTest(issue);
  const results = await Promise.all(
    addresses.map(async (to): Promise<TestCopyResult> => {
      try {
        const info = await c.mailer.sendRaw(copies.testCopy(mime, to, { greeting, unsubscribe_url, manage_url }));
        return { to, status: 'submitted', response: info.response };
      } catch (err) {
        // A relay's refusal (5xx, 4xx), or its lack of SMTPUTF8 for an address that needs it, is
        // the answer for that address; anything else (the relay unreachable) is the whole
        // request's failure.
        if (err instanceof SmtpUtf8Unavailable) return { to, status: 'rejected', response: err.message };
        if (smtpResponseCode(err) === undefined) throw new AppError(502, 'smtp_unavailable', `the SMTP relay could not be reached: ${(err as Error).message}`);
        return { to, status: 'rejected', response: (err as { response?: string }).response ?? (err as Error).message };
      }
    }),
  );
  log.info({ issueId: issue.id, copies: results.length, rejected: results.filter((r) => r.status === 'rejected').length }, 'test copies sent');
  return results;
}
