import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from '@jest/globals';
import { handleInboundReport, type InboundResult } from '../../src/bounces/inbound/handle-report.js';
import { storeInboundReport } from '../../src/bounces/inbound/queries.js';
import { createContainer } from '../../src/container.js';
import { bouncesOf, messageStatus, seedSubmittedSend, subscriberStatus, type SeededMessage } from '../support/bounces.js';
import { useTestContext } from '../support/context.js';

const t = useTestContext();

const FIXTURES = new URL('./fixtures/', import.meta.url);
const fixtureText = (name: string): string => readFileSync(new URL(name, FIXTURES), 'utf8');

/** The made-up token each fixture carries (see report.test.ts), to swap for a real one. */
const FAKE_TOKENS: Record<string, string> = {
  'postfix-user-unknown.eml': 'm2s-0123456789abcdef',
  'exim-headers-only.eml': 'm2t-fedcba9876543210',
  'exchange-ndr.eml': 'm2u-00112233aabbccdd',
  'gmail-no-such-user.eml': 'm2v-0f1e2d3c4b5a6978',
  'yahoo-arf-abuse.eml': 'm2w-aaaaaaaaaaaaaaaa',
  'arf-not-spam.eml': 'm2x-1234abcd1234abcd',
  'delayed.eml': 'm2y-0000111122223333',
  'two-recipients.eml': 'm2z-4444555566667777',
  'missing-original.eml': 'm30-89abcdef01234567',
  'qmail-plain.eml': 'm31-abcdefabcdefabcd',
  'bad-boundary.eml': 'm32-0a0b0c0d0e0f0a0b',
  'non-ascii-diagnostic.eml': 'm33-ffffeeeeddddcccc',
};

/** The fixture with every copy of its made-up token replaced by `token`. */
function withToken(name: string, token: string): Buffer {
  return Buffer.from(fixtureText(name).split(FAKE_TOKENS[name]!).join(token));
}

let readers = 0;
/** One reader with one submitted message of a fresh send. */
async function seedOne(): Promise<SeededMessage & { sendId: number }> {
  const s = await seedSubmittedSend(t, [`inbound-${++readers}@readers.test`]);
  return { ...s.messages[0]!, sendId: s.sendId };
}

/** As the listener hands a report over when it came to `bounces@` (the token only in the mail). */
const handle = (raw: Buffer, rcptTo = 'bounces@bounce.example.com'): Promise<InboundResult> => handleInboundReport(t.c, { raw, mailFrom: null, rcptTo });

async function reportRow(id: number): Promise<{ kind: string; rcpt_to: string; mail_from: string | null; size: number; raw: Buffer }> {
  const { rows } = await t.c.pool.query('SELECT kind, rcpt_to, mail_from, size, raw FROM inbound_reports WHERE id = $1', [id]);
  return rows[0];
}

type Case = {
  fixture: string;
  /** One per row, in the report's order. */
  rows: { type: string; source: string; status?: string | null; action?: string | null; feedback_type?: string | null }[];
  matchedBy: string;
  readerStatus: string;
  kind: string;
};

const cases: Case[] = [
  {
    fixture: 'postfix-user-unknown.eml',
    kind: 'dsn',
    rows: [{ type: 'hard', source: 'dsn', status: '5.1.1', action: 'failed' }],
    matchedBy: 'verp',
    readerStatus: 'bounced',
  },
  { fixture: 'exim-headers-only.eml', kind: 'dsn', rows: [{ type: 'hard', source: 'dsn', status: '5.2.1' }], matchedBy: 'verp', readerStatus: 'bounced' },
  { fixture: 'exchange-ndr.eml', kind: 'dsn', rows: [{ type: 'hard', source: 'dsn', status: '5.1.10' }], matchedBy: 'verp', readerStatus: 'bounced' },
  { fixture: 'gmail-no-such-user.eml', kind: 'dsn', rows: [{ type: 'hard', source: 'dsn', status: '5.1.1' }], matchedBy: 'verp', readerStatus: 'bounced' },
  // Sent to the feedback loop's own address: only the returned original names the message.
  {
    fixture: 'yahoo-arf-abuse.eml',
    kind: 'arf',
    rows: [{ type: 'complaint', source: 'arf', feedback_type: 'abuse' }],
    matchedBy: 'header',
    readerStatus: 'complained',
  },
  // Headers only, without X-Broadside-Message: the Message-ID names it.
  {
    fixture: 'arf-not-spam.eml',
    kind: 'arf',
    rows: [{ type: 'other', source: 'arf', feedback_type: 'not-spam' }],
    matchedBy: 'message_id',
    readerStatus: 'active',
  },
  {
    fixture: 'delayed.eml',
    kind: 'dsn',
    rows: [{ type: 'other', source: 'dsn', action: 'delayed', status: '4.4.7' }],
    matchedBy: 'verp',
    readerStatus: 'active',
  },
  {
    fixture: 'two-recipients.eml',
    kind: 'dsn',
    rows: [
      { type: 'hard', source: 'dsn', status: '5.2.2' },
      { type: 'other', source: 'dsn', action: 'delayed', status: '4.7.1' },
    ],
    matchedBy: 'verp',
    readerStatus: 'bounced',
  },
  { fixture: 'missing-original.eml', kind: 'dsn', rows: [{ type: 'hard', source: 'dsn', status: '5.1.1' }], matchedBy: 'verp', readerStatus: 'bounced' },
  {
    fixture: 'qmail-plain.eml',
    kind: 'dsn',
    rows: [
      { type: 'hard', source: 'dsn', status: '5.1.1' },
      { type: 'hard', source: 'dsn', status: '5.1.2' },
    ],
    matchedBy: 'verp',
    readerStatus: 'bounced',
  },
  { fixture: 'bad-boundary.eml', kind: 'dsn', rows: [{ type: 'hard', source: 'dsn', status: '5.1.1' }], matchedBy: 'verp', readerStatus: 'bounced' },
  { fixture: 'non-ascii-diagnostic.eml', kind: 'dsn', rows: [{ type: 'hard', source: 'dsn', status: '5.0.0' }], matchedBy: 'verp', readerStatus: 'bounced' },
];

describe('handleInboundReport on every fixture, with a real token', () => {
  it('covers every fixture', () => {
    expect(cases.map((c) => c.fixture).sort()).toEqual(Object.keys(FAKE_TOKENS).sort());
  });

  it.each(cases)('$fixture', async ({ fixture, kind, rows, matchedBy, readerStatus }) => {
    const m = await seedOne();
    const raw = withToken(fixture, m.token);
    const r = await handle(raw);
    expect(r).toEqual({ reportId: expect.any(Number), duplicate: false, recorded: rows.length, suppressed: readerStatus === 'active' ? 0 : 1 });

    const stored = await reportRow(r.reportId!);
    expect(stored).toMatchObject({ kind, rcpt_to: 'bounces@bounce.example.com', mail_from: null, size: raw.length });
    expect(stored.raw.equals(raw)).toBe(true);

    const got = await bouncesOf(t, 'report_id = $1', [r.reportId]);
    expect(got).toEqual(
      rows.map((row) =>
        expect.objectContaining({
          ...row,
          subscriber_id: m.subscriberId,
          message_id: m.id,
          send_id: m.sendId,
          matched_by: matchedBy,
          report_id: r.reportId,
        }),
      ),
    );
    expect((await subscriberStatus(t, m.subscriberId)).status).toBe(readerStatus);
    // Only a hard bounce marks the message itself; a complaint or a warning leaves it submitted.
    expect(await messageStatus(t, m.id)).toBe(rows.some((row) => row.type === 'hard') ? 'bounced' : 'submitted');
  });
});

describe('handleInboundReport: matching', () => {
  it('takes the token of the envelope recipient first (verp), over a token in the mail', async () => {
    const [inMail, inEnvelope] = [await seedOne(), await seedOne()];
    const r = await handle(withToken('postfix-user-unknown.eml', inMail.token), `bounces+${inEnvelope.token}@bounce.example.com`);
    const [row] = await bouncesOf(t, 'report_id = $1', [r.reportId]);
    expect(row).toMatchObject({ subscriber_id: inEnvelope.subscriberId, message_id: inEnvelope.id, matched_by: 'verp' });
    expect((await subscriberStatus(t, inEnvelope.subscriberId)).status).toBe('bounced');
    expect((await subscriberStatus(t, inMail.subscriberId)).status).toBe('active');
  });

  it('falls through a forged envelope token to the signed X-Broadside-Message of the original (header)', async () => {
    const m = await seedOne();
    const forged = `m${m.id.toString(36)}-0000000000000000`;
    // The report's own headers (Delivered-To, To) carry the forgery; the returned original the real token.
    const text = fixtureText('postfix-user-unknown.eml');
    const split = text.indexOf('Content-Type: message/rfc822');
    const raw = Buffer.from(
      text.slice(0, split).split(FAKE_TOKENS['postfix-user-unknown.eml']!).join(forged) +
        text.slice(split).split(FAKE_TOKENS['postfix-user-unknown.eml']!).join(m.token),
    );
    const r = await handle(raw, `bounces+${forged}@bounce.example.com`);
    const [row] = await bouncesOf(t, 'report_id = $1', [r.reportId]);
    expect(row).toMatchObject({ subscriber_id: m.subscriberId, matched_by: 'header', type: 'hard' });
  });

  it('a forged token (right shape, wrong signature) matches nothing: the row stays unmatched and the reader untouched', async () => {
    const m = await seedOne();
    const forged = `m${m.id.toString(36)}-0123456789abcdef`;
    const r = await handle(withToken('postfix-user-unknown.eml', forged), `bounces+${forged}@bounce.example.com`);
    expect(r).toMatchObject({ duplicate: false, recorded: 1, suppressed: 0 });
    const rows = await bouncesOf(t, 'report_id = $1', [r.reportId]);
    expect(rows).toEqual([expect.objectContaining({ type: 'hard', source: 'dsn', subscriber_id: null, message_id: null, matched_by: null, status: '5.1.1' })]);
    expect((await subscriberStatus(t, m.subscriberId)).status).toBe('active');
    expect(await messageStatus(t, m.id)).toBe('submitted');
  });

  it("never matches by address: a report naming a reader's address without a token stays unmatched", async () => {
    const m = await seedOne();
    const raw = Buffer.from(
      fixtureText('missing-original.eml').split(`bounces+${FAKE_TOKENS['missing-original.eml']}@`).join('bounces@').split('ivan@example.org').join(m.email),
    );
    const r = await handle(raw);
    const rows = await bouncesOf(t, 'report_id = $1', [r.reportId]);
    expect(rows).toEqual([expect.objectContaining({ type: 'hard', recipient: m.email, subscriber_id: null })]);
    expect((await subscriberStatus(t, m.subscriberId)).status).toBe('active');
  });

  it("matches by the DSN's Original-Envelope-Id (our ENVID) when nothing else names the message (envelope_id)", async () => {
    const m = await seedOne();
    const raw = Buffer.from(
      fixtureText('missing-original.eml')
        .split(`bounces+${FAKE_TOKENS['missing-original.eml']}@`)
        .join('bounces@')
        .replace(/^Reporting-MTA:.*$/m, (line) => `${line}\nOriginal-Envelope-Id: ${m.token}`),
    );
    const r = await handle(raw);
    const rows = await bouncesOf(t, 'report_id = $1', [r.reportId]);
    expect(rows).toEqual([expect.objectContaining({ type: 'hard', subscriber_id: m.subscriberId, message_id: m.id, matched_by: 'envelope_id' })]);
    expect((await subscriberStatus(t, m.subscriberId)).status).toBe('bounced');
  });

  it('a token of a message that does not exist matches nothing', async () => {
    const ghost = t.c.messageTokens.sign(987_654_321);
    const r = await handle(withToken('gmail-no-such-user.eml', ghost));
    const rows = await bouncesOf(t, 'report_id = $1', [r.reportId]);
    expect(rows).toEqual([expect.objectContaining({ type: 'hard', subscriber_id: null, matched_by: null })]);
  });
});

describe('handleInboundReport: the policy', () => {
  /** The Postfix bounce turned into a temporary failure the remote server gave up on. */
  const softBounce = (token: string, n: number): Buffer =>
    Buffer.from(
      withToken('postfix-user-unknown.eml', token)
        .toString('utf8')
        .replace('Status: 5.1.1', 'Status: 4.2.2')
        .replace('Diagnostic-Code: smtp; 550 5.1.1', 'Diagnostic-Code: smtp; 452 4.2.2')
        .replace('X-Postfix-Queue-ID: 4Z1A2B3C4D', `X-Postfix-Queue-ID: 4Z1A2B3C4D${n}`),
    );

  it('a soft bounce leaves the reader active; the limit (3 by default) within the window suppresses', async () => {
    const s = await seedSubmittedSend(t, ['soft-inbound@readers.test']);
    const more = [await seedSubmittedSend(t, ['soft-inbound@readers.test']), await seedSubmittedSend(t, ['soft-inbound@readers.test'])];
    const tokens = [s, ...more].map((x) => x.messages[0]!.token);
    const subscriberId = s.messages[0]!.subscriberId;

    const first = await handle(softBounce(tokens[0]!, 1));
    expect(first).toMatchObject({ recorded: 1, suppressed: 0 });
    expect(await bouncesOf(t, 'report_id = $1', [first.reportId])).toEqual([
      expect.objectContaining({ type: 'soft', status: '4.2.2', subscriber_id: subscriberId }),
    ]);
    const reader = await subscriberStatus(t, subscriberId);
    expect(reader.status).toBe('active');
    expect(reader.soft_bounces).toHaveLength(1);

    expect((await handle(softBounce(tokens[1]!, 2))).suppressed).toBe(0);
    expect((await subscriberStatus(t, subscriberId)).status).toBe('active');
    expect((await handle(softBounce(tokens[2]!, 3))).suppressed).toBe(1);
    expect((await subscriberStatus(t, subscriberId)).status).toBe('bounced');
  });
});

describe('handleInboundReport: what cannot be read or was seen before', () => {
  it('keeps a mail it cannot read as one unmatched row of type other, linked to the stored report', async () => {
    const raw = Buffer.from('From: zoe@example.org\nSubject: Re: The Weekly\n\nThanks, loved issue 12!\n');
    const r = await handle(raw);
    expect(r).toEqual({ reportId: expect.any(Number), duplicate: false, recorded: 1, suppressed: 0 });
    expect((await reportRow(r.reportId!)).kind).toBe('unknown');
    expect(await bouncesOf(t, 'report_id = $1', [r.reportId])).toEqual([
      expect.objectContaining({ type: 'other', source: 'dsn', subscriber_id: null, matched_by: null, diagnostic: expect.stringMatching(/could not be read/) }),
    ]);
  });

  it('an unreadable mail to a signed VERP address is kept matched, as other, and suppresses nobody', async () => {
    const m = await seedOne();
    const raw = Buffer.from(`From: postmaster@example.net\nSubject: something went wrong\n\n${'\u0000\u00ff'.repeat(100)}\n`, 'latin1');
    const r = await handle(raw, `bounces+${m.token}@bounce.example.com`);
    expect(await bouncesOf(t, 'report_id = $1', [r.reportId])).toEqual([
      expect.objectContaining({ type: 'other', subscriber_id: m.subscriberId, matched_by: 'verp', diagnostic: expect.stringMatching(/could not be read/) }),
    ]);
    expect((await subscriberStatus(t, m.subscriberId)).status).toBe('active');
  });

  it('the same bytes twice are stored and recorded once', async () => {
    const m = await seedOne();
    const raw = withToken('two-recipients.eml', m.token);
    const first = await handle(raw);
    const again = await handle(raw);
    expect(first).toMatchObject({ duplicate: false, recorded: 2 });
    expect(again).toEqual({ reportId: first.reportId, duplicate: true, recorded: 0, suppressed: 0 });
    expect(await bouncesOf(t, 'subscriber_id = $1', [m.subscriberId])).toHaveLength(2);
    const { rows } = await t.c.pool.query('SELECT count(*)::int AS n FROM inbound_reports WHERE sha256 = $1', [createHash('sha256').update(raw).digest()]);
    expect(rows[0].n).toBe(1);
  });

  it('a retry of a report stored but not recorded (the first try died in between) records it', async () => {
    const m = await seedOne();
    const raw = withToken('gmail-no-such-user.eml', m.token);
    const sha256 = createHash('sha256').update(raw).digest();
    const reportId = await storeInboundReport(t.c.pool, { mailFrom: null, rcptTo: 'bounces@bounce.example.com', kind: 'dsn', raw, sha256 });
    const r = await handle(raw);
    expect(r).toEqual({ reportId, duplicate: true, recorded: 1, suppressed: 1 });
    expect(await bouncesOf(t, 'report_id = $1', [reportId])).toEqual([expect.objectContaining({ type: 'hard', subscriber_id: m.subscriberId })]);
    expect((await subscriberStatus(t, m.subscriberId)).status).toBe('bounced');
  });

  it('throws when Postgres fails, so that the listener can answer 451', async () => {
    const c = await createContainer(t.config, { log: t.c.log });
    await c.close();
    await expect(handleInboundReport(c, { raw: withToken('delayed.eml', 'm1-0000000000000000'), mailFrom: null, rcptTo: 'bounces@x.test' })).rejects.toThrow();
  });
});
