import { describe, expect, it } from '@jest/globals';
import { matchToken, writeBounce, type BounceInput } from '../../src/bounces/queries.js';
import { markSubmitted } from '../../src/delivery/queries.js';
import { bouncesOf, messageStatus, seedSubmittedSend, subscriberStatus } from '../support/bounces.js';
import { useTestContext } from '../support/context.js';

const t = useTestContext();
const policy = { softBounceLimit: 3, softBounceWindowDays: 30 };

function bounceFor(m: { id: number; subscriberId: number }, sendId: number, type: BounceInput['type'], extra: Partial<BounceInput> = {}): BounceInput {
  return { type, source: 'dsn', match: { messageId: m.id, subscriberId: m.subscriberId, sendId, matchedBy: 'verp' }, ...extra };
}

describe('writeBounce: the suppression policy', () => {
  it('a hard bounce suppresses the reader at once and marks the accepted message bounced', async () => {
    const s = await seedSubmittedSend(t, ['hard-1@example.org', 'hard-2@example.org']);
    const [m, other] = s.messages;
    const r = await writeBounce(t.c.pool, bounceFor(m!, s.sendId, 'hard', { status: '5.1.1', diagnostic: 'smtp; 550 5.1.1 no such user' }), policy);
    expect(r).toEqual({ id: expect.any(Number), subscriberStatus: 'bounced', suppressed: true });
    expect((await subscriberStatus(t, m!.subscriberId)).status).toBe('bounced');
    expect((await subscriberStatus(t, m!.subscriberId)).bounced_at).toBeInstanceOf(Date);
    expect(await messageStatus(t, m!.id)).toBe('bounced');
    // The other reader of the send is untouched.
    expect((await subscriberStatus(t, other!.subscriberId)).status).toBe('active');
    expect(await messageStatus(t, other!.id)).toBe('submitted');
  });

  it('a complaint suppresses at once, even a reader who had unsubscribed', async () => {
    const s = await seedSubmittedSend(t, ['complainer@example.org']);
    const m = s.messages[0]!;
    await t.c.pool.query(`UPDATE subscribers SET status = 'unsubscribed', unsubscribed_at = now() WHERE id = $1`, [m.subscriberId]);
    const r = await writeBounce(t.c.pool, bounceFor(m, s.sendId, 'complaint', { source: 'arf', feedbackType: 'abuse' }), policy);
    expect(r?.subscriberStatus).toBe('complained');
    expect(r?.suppressed).toBe(true);
    const reader = await subscriberStatus(t, m.subscriberId);
    expect(reader.complained_at).toBeInstanceOf(Date);
    // A complaint is not a bounce: the message stays submitted.
    expect(await messageStatus(t, m.id)).toBe('submitted');
  });

  it('soft bounces suppress at the third within the window, not before', async () => {
    const s = await seedSubmittedSend(t, ['soft@example.org']);
    const m = s.messages[0]!;
    for (const n of [1, 2]) {
      const r = await writeBounce(t.c.pool, bounceFor(m, s.sendId, 'soft', { status: '4.2.2' }), policy);
      expect([n, r?.subscriberStatus, r?.suppressed]).toEqual([n, 'active', false]);
    }
    expect((await subscriberStatus(t, m.subscriberId)).soft_bounces).toHaveLength(2);
    const third = await writeBounce(t.c.pool, bounceFor(m, s.sendId, 'soft', { status: '4.2.2' }), policy);
    expect([third?.subscriberStatus, third?.suppressed]).toEqual(['bounced', true]);
    // A soft bounce never marks the message itself bounced.
    expect(await messageStatus(t, m.id)).toBe('submitted');
  });

  it('soft bounces older than the window do not count', async () => {
    const s = await seedSubmittedSend(t, ['old-soft@example.org']);
    const m = s.messages[0]!;
    const old = new Date(Date.now() - 31 * 86400_000);
    await writeBounce(t.c.pool, bounceFor(m, s.sendId, 'soft', { occurredAt: old }), policy);
    await writeBounce(t.c.pool, bounceFor(m, s.sendId, 'soft', { occurredAt: old }), policy);
    const r = await writeBounce(t.c.pool, bounceFor(m, s.sendId, 'soft'), policy);
    expect(r?.subscriberStatus).toBe('active');
    expect((await subscriberStatus(t, m.subscriberId)).soft_bounces).toHaveLength(1);
  });

  it('three soft bounces recorded at the same moment suppress the reader (no lost update)', async () => {
    const s = await seedSubmittedSend(t, ['racing-soft@example.org']);
    const m = s.messages[0]!;
    const results = await Promise.all([1, 2, 3].map(() => writeBounce(t.c.pool, bounceFor(m, s.sendId, 'soft'), policy)));
    expect(results.filter((r) => r?.suppressed)).toHaveLength(1);
    expect((await subscriberStatus(t, m.subscriberId)).status).toBe('bounced');
  });

  it('the same event twice is recorded once', async () => {
    const s = await seedSubmittedSend(t, ['twice@example.org']);
    const m = s.messages[0]!;
    const input = bounceFor(m, s.sendId, 'soft', { source: 'postmark', eventId: 'pm-123' });
    expect(await writeBounce(t.c.pool, input, policy)).toBeDefined();
    expect(await writeBounce(t.c.pool, input, policy)).toBeUndefined();
    expect(await bouncesOf(t, 'subscriber_id = $1', [m.subscriberId])).toHaveLength(1);
    expect((await subscriberStatus(t, m.subscriberId)).soft_bounces).toHaveLength(1);
  });

  it('an unmatched report is kept, with nobody suppressed', async () => {
    const r = await writeBounce(t.c.pool, { type: 'hard', source: 'dsn', match: null, recipient: 'stranger@example.net', status: '5.1.1' }, policy);
    expect(r).toEqual({ id: expect.any(Number), subscriberStatus: null, suppressed: false });
    const [row] = await bouncesOf(t, 'id = $1', [r!.id]);
    expect(row).toMatchObject({ subscriber_id: null, matched_by: null, recipient: 'stranger@example.net', type: 'hard' });
  });

  it('other events are stored and change nothing', async () => {
    const s = await seedSubmittedSend(t, ['delayed@example.org']);
    const m = s.messages[0]!;
    const r = await writeBounce(t.c.pool, bounceFor(m, s.sendId, 'other', { action: 'delayed', status: '4.4.7' }), policy);
    expect(r?.subscriberStatus).toBe('active');
    expect((await subscriberStatus(t, m.subscriberId)).soft_bounces).toBeNull();
  });
});

describe('matchToken', () => {
  it('finds the message a signed token names, tries candidates in order, and refuses forgeries', async () => {
    const s = await seedSubmittedSend(t, ['match@example.org']);
    const m = s.messages[0]!;
    const forged = `m${m.id.toString(36)}-0000000000000000`;
    expect(
      await matchToken(t.c.pool, t.c.messageTokens, [
        { token: forged, matchedBy: 'verp' },
        { token: null, matchedBy: 'header' },
        { token: m.token, matchedBy: 'message_id' },
      ]),
    ).toEqual({ messageId: m.id, subscriberId: m.subscriberId, sendId: s.sendId, matchedBy: 'message_id' });
    expect(await matchToken(t.c.pool, t.c.messageTokens, [{ token: forged, matchedBy: 'verp' }])).toBeNull();
    // Signed, but no such message.
    expect(await matchToken(t.c.pool, t.c.messageTokens, [{ token: t.c.messageTokens.sign(999_999_999), matchedBy: 'verp' }])).toBeNull();
  });
});

describe('erasing a reader', () => {
  it('scrubs their bounce rows and deletes their raw reports, keeping the rows for the counts', async () => {
    const s = await seedSubmittedSend(t, ['erase-me@example.org']);
    const m = s.messages[0]!;
    const { storeInboundReport } = await import('../../src/bounces/inbound/queries.js');
    const raw = Buffer.from('From: MAILER-DAEMON\r\n\r\nerase-me@example.org: 550 5.1.1 unknown\r\n');
    const reportId = await storeInboundReport(t.c.pool, {
      mailFrom: null,
      rcptTo: `bounces+${m.token}@b.test`,
      kind: 'unknown',
      raw,
      sha256: Buffer.alloc(32, 7),
    });
    await writeBounce(t.c.pool, bounceFor(m, s.sendId, 'hard', { recipient: m.email, diagnostic: 'smtp; 550 erase-me@example.org unknown', reportId }), policy);
    const res = await t.app.inject({ method: 'DELETE', url: `/api/subscribers/${m.subscriberId}`, headers: t.auth });
    expect(res.statusCode).toBe(204);
    const rows = await bouncesOf(t, 'subscriber_id = $1', [m.subscriberId]);
    expect(rows).toEqual([expect.objectContaining({ type: 'hard', recipient: null, diagnostic: null, report_id: null, send_id: s.sendId })]);
    const { rowCount } = await t.c.pool.query('SELECT 1 FROM inbound_reports WHERE id = $1', [reportId]);
    expect(rowCount).toBe(0);
  });
});

describe('a suppressed reader who signs up again', () => {
  it('stays suppressed until they press the confirm button again', async () => {
    const s = await seedSubmittedSend(t, ['comeback@example.org']);
    const m = s.messages[0]!;
    await writeBounce(t.c.pool, bounceFor(m, s.sendId, 'hard'), policy);
    const res = await t.app.inject({ method: 'POST', url: '/subscribe', payload: { email: 'comeback@example.org' } });
    expect(res.statusCode).toBe(202);
    // A confirmation is on its way, but until it is pressed nothing is sent to them.
    expect((await subscriberStatus(t, m.subscriberId)).status).toBe('bounced');
    const { rows } = await t.c.pool.query('SELECT confirmation_sent_at FROM subscribers WHERE id = $1', [m.subscriberId]);
    expect(rows[0].confirmation_sent_at).toBeInstanceOf(Date);
  });
});

describe('soft bounces behind a relay (every submission accepted, DSNs later)', () => {
  /** The relay accepted the message: recorded through the same statement the workers use. */
  async function submitted(messageId: number) {
    await t.c.pool.query(`UPDATE messages SET status = 'sending' WHERE id = $1`, [messageId]);
    await markSubmitted(t.c.pool, [messageId], ['250 2.0.0 Ok']);
  }
  async function weekly(email: string, weeks: number) {
    const sends = [];
    for (let i = 0; i < weeks; i++) {
      const s = await seedSubmittedSend(t, [email]);
      await t.c.pool.query(`UPDATE messages SET status = 'sending' WHERE id = $1`, [s.messages[0]!.id]);
      sends.push({ sendId: s.sendId, m: s.messages[0]! });
    }
    return sends;
  }

  it('three issues in a row soft-bounced by DSN suppress the reader', async () => {
    const weeks = await weekly('always-full@example.org', 3);
    for (const [i, w] of weeks.entries()) {
      await submitted(w.m.id);
      const r = await writeBounce(t.c.pool, bounceFor(w.m, w.sendId, 'soft', { status: '4.2.2' }), policy);
      expect([i, r?.subscriberStatus]).toEqual([i, i < 2 ? 'active' : 'bounced']);
    }
  });

  it('an issue in between that drew no bounce starts the count again', async () => {
    const [w1, w2, w3, w4] = await weekly('sometimes-full@example.org', 4);
    await submitted(w1!.m.id);
    await writeBounce(t.c.pool, bounceFor(w1!.m, w1!.sendId, 'soft'), policy);
    await submitted(w2!.m.id);
    await writeBounce(t.c.pool, bounceFor(w2!.m, w2!.sendId, 'soft'), policy);
    await submitted(w3!.m.id); // went through: no DSN came back
    await submitted(w4!.m.id);
    const r = await writeBounce(t.c.pool, bounceFor(w4!.m, w4!.sendId, 'soft'), policy);
    expect(r?.subscriberStatus).toBe('active');
    expect((await subscriberStatus(t, w4!.m.subscriberId)).soft_bounces).toHaveLength(1);
  });

  it('a soft bounce arriving after a quiet submission also starts the count again', async () => {
    const [w1, w2, w3] = await weekly('was-full@example.org', 3);
    await submitted(w1!.m.id);
    await writeBounce(t.c.pool, bounceFor(w1!.m, w1!.sendId, 'soft'), policy);
    await writeBounce(t.c.pool, bounceFor(w1!.m, w1!.sendId, 'soft'), policy);
    await submitted(w2!.m.id); // went through
    // w3 refused at submission (a direct relay's 4xx): no submission in between to notice w2.
    const r = await writeBounce(t.c.pool, bounceFor(w3!.m, w3!.sendId, 'soft'), policy);
    expect(r?.subscriberStatus).toBe('active');
    expect((await subscriberStatus(t, w3!.m.subscriberId)).soft_bounces).toHaveLength(1);
  });
});
