// A correction between two runs of one send (issue 14, items 4 and 5): workers keep an issue's
// prepared MIME in memory, keyed by send and revision, so copies mailed after a correction carry
// the corrected text, never the bytes prepared before it.
import { describe, expect, it } from '@jest/globals';
import { useTestContext } from '../support/context.js';
import { copiesOf, editor, workersIdle } from '../support/editor.js';
import { addActiveReaders } from '../support/readers.js';
import { headerOf } from '../support/smtp-sink.js';

// One attempt, so a refused reader's message is failed at once.
const t = useTestContext({ worker: true, env: { DELIVERY_ATTEMPTS: '1', RETRY_DELAY_SECONDS: '1' } });
const { api, createIssue, trigger, waitForStatus } = editor(t);

describe('retry-failed after a correction', () => {
  it('mails the corrected subject and text to the readers retried; the copies sent before keep theirs', async () => {
    await addActiveReaders(t, ['first@example.com', 'second@example.com', 'refused@example.com']);
    let refusing = true;
    t.smtp.rejectRecipient = (a) => (refusing && a === 'refused@example.com' ? { code: 452, message: '4.2.2 Mailbox full' } : undefined);
    const issue = await createIssue({ subject: 'Before the fix', markdown: 'The old words.\n\n## One\n\nText.' });
    const send = await trigger(issue.id);
    expect(await waitForStatus(issue.id, 'done')).toMatchObject({ total: 3, submitted: 2, failed: 1 });

    const fix = await api('PATCH', `/api/issues/${issue.id}`, { subject: 'After the fix', markdown: 'The new words.\n\n## One\n\nText.' });
    expect([fix.statusCode, fix.json()]).toEqual([200, expect.objectContaining({ revision: 2, correction: { mailAlreadySent: true } })]);

    refusing = false;
    const retry = await api('POST', `/api/issues/${issue.id}/send/retry-failed`);
    expect([retry.statusCode, retry.json()]).toEqual([200, expect.objectContaining({ queued: 1 })]);
    expect(await waitForStatus(issue.id, 'done')).toMatchObject({ total: 3, submitted: 3, failed: 0 });
    await workersIdle(t);

    const copies = copiesOf(t, send.id).map((m) => ({ to: m.recipients[0], subject: headerOf(m, 'subject'), newWords: m.raw.includes('The new words.') }));
    expect(copies.sort((a, b) => a.to!.localeCompare(b.to!))).toEqual([
      { to: 'first@example.com', subject: 'Before the fix', newWords: false },
      { to: 'refused@example.com', subject: 'After the fix', newWords: true },
      { to: 'second@example.com', subject: 'Before the fix', newWords: false },
    ]);
  }, 60_000);
});
