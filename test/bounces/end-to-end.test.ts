import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import nodemailer from 'nodemailer';
import { startBounceListener, type BounceListener } from '../../src/bounces/inbound/listener.js';
import { bouncesOf, subscriberStatus } from '../support/bounces.js';
import { createTestContext, type TestContext } from '../support/context.js';
import { copiesOf, editor, workersIdle } from '../support/editor.js';
import type { ReceivedMail } from '../support/smtp-sink.js';

// The issue's acceptance test: a real send through the relay (the test SMTP sink) with VERP on,
// a remote server's bounce for one reader delivered over SMTP to the listener, and the next send
// leaving that reader out.

const DOMAIN = 'bounces.broadside.test';
const READERS = ['alpha@readers.test', 'bravo@readers.test', 'charlie@readers.test'];

let t: TestContext;
let listener: BounceListener;

beforeAll(async () => {
  t = await createTestContext({ worker: true, env: { BOUNCE_DOMAIN: DOMAIN } });
  listener = await startBounceListener({ c: t.c, port: 0, host: '127.0.0.1' });
});
afterEach(async () => {
  // The workers at rest before the leak check (a fan-out holds a client while it runs).
  await workersIdle(t);
  t.assertNoLeaks();
});
afterAll(async () => {
  await listener?.close();
  await t?.close();
});

/** The header block of a mail as the relay received it. */
function headersOf(mail: ReceivedMail): string {
  const raw = mail.raw.replace(/\r\n/g, '\n');
  return raw.slice(0, raw.indexOf('\n\n') + 1);
}

/** What Postfix sends back when the remote server refused the recipient with 550 5.1.1. */
function postfixBounce(copy: ReceivedMail, recipient: string): string {
  const boundary = '7C1D2E3F4A.1764000004/mx.relay.test';
  return [
    'Return-Path: <>',
    `Delivered-To: ${copy.envelopeFrom}`,
    'Date: Tue, 24 Nov 2026 10:00:04 +0000 (UTC)',
    'From: MAILER-DAEMON@mx.relay.test (Mail Delivery System)',
    'Subject: Undelivered Mail Returned to Sender',
    `To: ${copy.envelopeFrom}`,
    'Auto-Submitted: auto-replied',
    'MIME-Version: 1.0',
    `Content-Type: multipart/report; report-type=delivery-status; boundary="${boundary}"`,
    '',
    `--${boundary}`,
    'Content-Description: Notification',
    'Content-Type: text/plain; charset=us-ascii',
    '',
    `<${recipient}>: host mx.readers.test[198.51.100.7] said: 550 5.1.1 <${recipient}>:`,
    '    Recipient address rejected: User unknown (in reply to RCPT TO command)',
    '',
    `--${boundary}`,
    'Content-Description: Delivery report',
    'Content-Type: message/delivery-status',
    '',
    'Reporting-MTA: dns; mx.relay.test',
    `X-Postfix-Sender: rfc822; ${copy.envelopeFrom}`,
    '',
    `Final-Recipient: rfc822; ${recipient}`,
    `Original-Recipient: rfc822;${recipient}`,
    'Action: failed',
    'Status: 5.1.1',
    'Remote-MTA: dns; mx.readers.test',
    `Diagnostic-Code: smtp; 550 5.1.1 <${recipient}>: Recipient address rejected: User unknown`,
    '',
    `--${boundary}`,
    'Content-Description: Undelivered Message Headers',
    'Content-Type: text/rfc822-headers',
    '',
    `Return-Path: <${copy.envelopeFrom}>`,
    headersOf(copy),
    `--${boundary}--`,
    '',
  ].join('\n');
}

async function deliverToListener(raw: string, to: string): Promise<string> {
  const transport = nodemailer.createTransport({ host: '127.0.0.1', port: listener.port, secure: false, ignoreTLS: true });
  try {
    return (await transport.sendMail({ envelope: { from: '', to }, raw })).response;
  } finally {
    transport.close();
  }
}

describe('a DSN to the bounce listener suppresses the reader for the next send', () => {
  it('sends to three, bounces one over SMTP, and the next issue goes to the other two only', async () => {
    const e = editor(t);
    const ids: number[] = [];
    for (const email of READERS) {
      const res = await e.api('POST', '/api/subscribers', { email });
      expect([res.statusCode, res.body]).toEqual([201, expect.any(String)]);
      ids.push((res.json() as { id: number }).id);
    }

    const first = await e.createIssue('The Weekly, issue 1');
    const { id: firstSendId } = await e.trigger(first.id);
    expect(await e.waitForStatus(first.id, 'done')).toMatchObject({ total: 3, submitted: 3 });
    const copies = copiesOf(t, firstSendId);
    expect(copies.flatMap((m) => m.recipients).sort()).toEqual([...READERS].sort());

    // Every copy went out with its own VERP return path.
    for (const copy of copies) expect(copy.envelopeFrom).toMatch(new RegExp(`^bounces\\+m[0-9a-z]+-[0-9a-f]{16}@${DOMAIN.replace(/\./g, '\\.')}$`));
    const [gone, ...staying] = READERS as [string, ...string[]];
    const goneCopy = copies.find((m) => m.recipients.includes(gone))!;

    const reply = await deliverToListener(postfixBounce(goneCopy, gone), goneCopy.envelopeFrom);
    expect(reply).toMatch(/^250 2\.0\.0 report \d+ stored$/);

    const goneId = ids[0]!;
    expect((await subscriberStatus(t, goneId)).status).toBe('bounced');
    for (const id of ids.slice(1)) expect((await subscriberStatus(t, id)).status).toBe('active');
    expect(await bouncesOf(t, 'subscriber_id = $1', [goneId])).toEqual([
      expect.objectContaining({
        type: 'hard',
        source: 'dsn',
        matched_by: 'verp',
        send_id: firstSendId,
        status: '5.1.1',
        recipient: gone,
        report_id: expect.any(Number),
      }),
    ]);
    const {
      rows: [message],
    } = await t.c.pool.query('SELECT status::text FROM messages WHERE send_id = $1 AND subscriber_id = $2', [firstSendId, goneId]);
    expect(message.status).toBe('bounced');

    const second = await e.createIssue('The Weekly, issue 2');
    const { id: secondSendId } = await e.trigger(second.id);
    expect(await e.waitForStatus(second.id, 'done')).toMatchObject({ total: 2, submitted: 2 });
    const next = copiesOf(t, secondSendId);
    expect(next.flatMap((m) => m.recipients).sort()).toEqual([...staying].sort());
    expect(t.smtp.to(gone)).toHaveLength(1);
  });
});
