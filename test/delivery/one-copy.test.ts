// One path for a copy (issue 16, item 3): an editor's test copy and a reader's copy are built by
// the same code (src/delivery/prepare-copy.ts), so they are the same bytes on the wire apart from
// the values that are each reader's own and the test copy's marker.
import { describe, expect, it } from '@jest/globals';
import { encodeSlotValue } from '../../src/delivery/mime-template.js';
import { useTestContext } from '../support/context.js';
import { copiesOf, editor, workersIdle } from '../support/editor.js';
import { addReaders } from '../support/readers.js';
import { headerOf, type ReceivedMail } from '../support/smtp-sink.js';

const t = useTestContext({ worker: true });
const { api, createIssue, trigger, waitForStatus } = editor(t);

/** The header names a copy carries for its reader alone, and the test marker's. */
const PER_COPY = ['To', 'Date', 'Message-ID', 'List-Unsubscribe'];
const MARKER = ['Subject', 'Feedback-ID', 'X-Broadside-Test', 'X-Broadside-Message'];

/**
 * The raw message with each per-copy and marker header line (folded lines included) replaced by
 * its name, and each of `values` replaced where the parts carry it: quoted-printable, as a slot
 * value, in the text part and (escaped) in the HTML part. Nothing else is touched.
 */
function masked(mail: ReceivedMail, values: Record<string, string>): string {
  const end = mail.raw.indexOf('\r\n\r\n');
  let head = mail.raw.slice(0, end + 2);
  let body = mail.raw.slice(end + 2);
  for (const name of [...PER_COPY, ...MARKER]) {
    head = head.replace(
      new RegExp(`^${name}: .*\\r\\n(?:[ \\t].*\\r\\n)*`, 'im'),
      name === 'X-Broadside-Test' || name === 'X-Broadside-Message' ? '' : `${name}: <masked>\r\n`,
    );
  }
  for (const [slot, value] of Object.entries(values)) {
    const before = body;
    for (const html of [false, true]) body = body.replaceAll(encodeSlotValue(value, html).toString('latin1'), `{{${slot}}}=\r\n`);
    expect([slot, body === before]).toEqual([slot, false]);
  }
  return head + body;
}

describe('a test copy and a reader copy', () => {
  it('are byte for byte the same apart from the reader values and the test marker', async () => {
    const [reader] = await addReaders(t, [{ email: 'ann@example.com', name: 'Ann Reader' }]);
    const issue = await createIssue({
      subject: 'Café Zürich & co — this week',
      markdown:
        'Hello **there**: a [link](https://example.com/a?b=1&c=2).\n\n## One «section»\n\nText with a long line '.padEnd(400, 'x') +
        '\n\n## Two\n\n. a line that starts with a dot',
    });
    const send = await trigger(issue.id);
    expect(await waitForStatus(issue.id, 'done')).toMatchObject({ total: 1, submitted: 1 });
    await workersIdle(t);
    const res = await api('POST', `/api/issues/${issue.id}/test`, { to: ['ann@example.com'] });
    expect([res.statusCode, res.json()]).toEqual([200, { results: [expect.objectContaining({ status: 'submitted' })] }]);

    const [copy] = copiesOf(t, send.id);
    const test = t.smtp.messages.find((m) => headerOf(m, 'x-broadside-test') === 'yes');
    if (!copy || !test) throw new Error(`copies: reader ${Boolean(copy)}, test ${Boolean(test)}`);

    // The marker: the subject's prefix, the header, and `test` for the send in Feedback-ID.
    expect(test.parsed.subject).toBe(`[Test] ${copy.parsed.subject}`);
    expect(headerOf(copy, 'feedback-id')).toBe(`issue${issue.id}:send${send.id}:newsletter:broadside`);
    expect(headerOf(test, 'feedback-id')).toBe(`issue${issue.id}:test:newsletter:broadside`);
    expect(headerOf(copy, 'x-broadside-test')).toBeUndefined();
    expect(headerOf(test, 'x-broadside-message')).toBeUndefined();
    expect(headerOf(copy, 'x-broadside-message')).toMatch(/\S/);

    const readerValues = {
      greeting: 'Hi Ann Reader,',
      unsubscribe_url: t.c.links.unsubscribe(reader!.id),
      manage_url: t.c.links.manage(reader!.id),
    };
    const sampleValues = {
      greeting: 'Hi Sample Reader,',
      unsubscribe_url: `${t.config.publicUrl}/unsubscribe/sample`,
      manage_url: `${t.config.publicUrl}/manage/sample`,
    };
    expect(headerOf(copy, 'list-unsubscribe')).toBe(`<${readerValues.unsubscribe_url}>`);
    expect(headerOf(test, 'list-unsubscribe')).toBe(`<${sampleValues.unsubscribe_url}>`);
    const a = masked(copy, readerValues);
    const b = masked(test, sampleValues);
    expect(a.length).toBeGreaterThan(1000);
    expect(a).toBe(b);
  }, 60_000);
});
