import { describe, expect, it } from '@jest/globals';
import { writeBounce } from '../../src/bounces/queries.js';
import { guardSend, ratesOf } from '../../src/sending/rate-guard.js';
import type { Progress } from '../../src/sending/queries.js';
import { seedSubmittedSend } from '../support/bounces.js';
import { createTestContext, useTestContext, type TestContext } from '../support/context.js';
import { editor, until } from '../support/editor.js';
import { captureLog } from '../support/log-capture.js';
import { addActiveReaders } from '../support/readers.js';

const thresholds = { bounceRateThreshold: 5, complaintRateThreshold: 0.1, rateGuardMinMessages: 100 };
const progress = (p: Partial<Progress>): Progress => ({
  queued: 0,
  sending: 0,
  submitted: 0,
  failed: 0,
  bounced: 0,
  cancelled: 0,
  lastMinute: 0,
  inDoubt: 0,
  complaints: 0,
  softBounces: 0,
  ...p,
});

describe('ratesOf', () => {
  it('computes the rates over the messages that reached the relay', () => {
    const r = ratesOf(progress({ submitted: 900, bounced: 50, failed: 50, complaints: 1, queued: 5000 }), thresholds);
    expect(r).toEqual({ processed: 1000, bounceRate: 0.05, complaintRate: 0.001, alert: null });
  });

  it('alerts when a rate passes its threshold (not when it equals it)', () => {
    expect(ratesOf(progress({ submitted: 949, bounced: 51 }), thresholds).alert).toBe('bounce rate 5.1 % passed 5 % (51 of 1000 messages)');
    expect(ratesOf(progress({ submitted: 998, bounced: 0, complaints: 2, failed: 2 }), thresholds).alert).toBe(
      'complaint rate 0.2 % passed 0.1 % (2 of 1000 messages)',
    );
  });

  it('says nothing below the minimum sample', () => {
    expect(ratesOf(progress({ submitted: 50, bounced: 49 }), thresholds).alert).toBeNull();
    expect(ratesOf(progress({}), thresholds)).toEqual({ processed: 0, bounceRate: 0, complaintRate: 0, alert: null });
  });
});

describe('guardSend: complaints reported while a send runs', () => {
  const t = useTestContext({ env: { RATE_GUARD_MIN_MESSAGES: '10' } });

  async function sendWithComplaints(complaints: number) {
    const emails = Array.from({ length: 20 }, (_, i) => `guarded-${Date.now()}-${i}@example.org`);
    const s = await seedSubmittedSend(t, emails, 'sending');
    for (const m of s.messages.slice(0, complaints)) {
      await writeBounce(
        t.c.pool,
        {
          type: 'complaint',
          source: 'arf',
          feedbackType: 'abuse',
          match: { messageId: m.id, subscriberId: m.subscriberId, sendId: s.sendId, matchedBy: 'verp' },
        },
        t.c.config,
      );
    }
    return s;
  }

  it('pauses a send whose complaint rate passes 0.1 %, once, and shows why in its progress', async () => {
    const s = await sendWithComplaints(1);
    await guardSend(t.c, s.sendId);
    const p = await editor(t).progress(s.issueId);
    expect(p).toMatchObject({
      status: 'paused',
      complaints: 1,
      complaintRate: 0.05,
      rateAlert: { message: 'complaint rate 5 % passed 0.1 % (1 of 20 messages)', at: expect.any(String), waived: false },
    });
    // The editor decides to go on: resuming waives the alert, and the guard leaves the send alone.
    expect((await editor(t).control(s.issueId, 'resume')).status).toBe(200);
    await writeBounce(
      t.c.pool,
      {
        type: 'complaint',
        source: 'arf',
        match: { messageId: s.messages[5]!.id, subscriberId: s.messages[5]!.subscriberId, sendId: s.sendId, matchedBy: 'verp' },
      },
      t.c.config,
    );
    await guardSend(t.c, s.sendId);
    expect(await editor(t).progress(s.issueId)).toMatchObject({ status: 'sending', complaints: 2, rateAlert: { waived: true } });
  });

  it('leaves a send whose rates are below the thresholds alone', async () => {
    const s = await sendWithComplaints(0);
    await guardSend(t.c, s.sendId);
    expect(await editor(t).progress(s.issueId)).toMatchObject({ status: 'sending', complaints: 0, rateAlert: null });
  });
});

describe('guardSend with PAUSE_ON_HIGH_RATES=false', () => {
  const t = useTestContext({ env: { RATE_GUARD_MIN_MESSAGES: '1', PAUSE_ON_HIGH_RATES: 'false' } });

  it('raises the alert but keeps sending', async () => {
    const s = await seedSubmittedSend(t, ['only-warned@example.org'], 'sending');
    const m = s.messages[0]!;
    await writeBounce(
      t.c.pool,
      { type: 'hard', source: 'dsn', match: { messageId: m.id, subscriberId: m.subscriberId, sendId: s.sendId, matchedBy: 'verp' } },
      t.c.config,
    );
    await guardSend(t.c, s.sendId);
    expect(await editor(t).progress(s.issueId)).toMatchObject({
      status: 'sending',
      bounced: 1,
      bounceRate: 1,
      rateAlert: { message: expect.stringMatching(/^bounce rate 100 % passed 5 %/) },
    });
  });
});

describe('a send whose readers bounce at submission', () => {
  let t: TestContext;
  const log = captureLog();

  it('is paused by the workers themselves, with a warning in the log', async () => {
    // Slow enough (5 a second) that the send is still running when the check comes.
    t = await createTestContext({ worker: true, logTo: log.stream, env: { LOG_LEVEL: 'info', SEND_RATE: '5', RATE_GUARD_MIN_MESSAGES: '5' } });
    try {
      const emails = Array.from({ length: 30 }, (_, i) => `reader-${String(i).padStart(2, '0')}@example.com`);
      await addActiveReaders(t, emails);
      // The first five readers' mailboxes do not exist.
      t.smtp.rejectRecipient = (a) => (emails.indexOf(a) < 5 ? { code: 550, message: '5.1.1 no such user' } : undefined);
      const e = editor(t);
      const issue = await e.createIssue('Bouncy');
      await e.trigger(issue.id);
      const paused = await e.waitForStatus(issue.id, 'paused');
      expect(paused.bounced).toBe(5);
      expect(paused).toMatchObject({ rateAlert: { message: expect.stringMatching(/^bounce rate .* passed 5 %/), waived: false } });
      expect(paused.queued).toBeGreaterThan(0);
      const warning = await until('the warning', () => log.lines().find((l) => /bounce rate .* paused for the editor to decide/.test(String(l.msg))));
      expect(warning).toMatchObject({ level: 40, sendId: expect.any(Number), paused: true });
      // Nobody's address is in it.
      expect(JSON.stringify(warning)).not.toMatch(/@example\.com/);
    } finally {
      await t.close();
    }
  });
});

describe('a complaint that arrives by the bounce listener while the send runs', () => {
  it("pauses the send at the supervisor's next pass", async () => {
    // Supervisor passes every second (a quarter of the sending timeout); 4 messages a second.
    const t = await createTestContext({ worker: true, env: { SEND_RATE: '4', SENDING_TIMEOUT_SECONDS: '4', RATE_GUARD_MIN_MESSAGES: '3' } });
    try {
      const emails = Array.from({ length: 40 }, (_, i) => `listener-reader-${i}@example.com`);
      await addActiveReaders(t, emails);
      const e = editor(t);
      const issue = await e.createIssue('Complained about');
      const { id: sendId } = await e.trigger(issue.id);
      const first = await until('a first submission', async () => {
        const { rows } = await t.c.pool.query(`SELECT id FROM messages WHERE send_id = $1 AND status = 'submitted' ORDER BY id LIMIT 1`, [sendId]);
        return rows[0] as { id: number } | undefined;
      });
      const token = t.c.messageTokens.sign(first.id);
      const arf = Buffer.from(
        [
          'From: feedback@fbl.example.net',
          'To: bounces@bounces.example.com',
          'Subject: FW: complaint',
          'MIME-Version: 1.0',
          'Content-Type: multipart/report; report-type=feedback-report; boundary="f"',
          '',
          '--f',
          'Content-Type: text/plain',
          '',
          'A complaint about a message from your network.',
          '',
          '--f',
          'Content-Type: message/feedback-report',
          '',
          'Feedback-Type: abuse',
          'User-Agent: FBL/1.0',
          'Version: 1',
          '',
          '--f',
          'Content-Type: text/rfc822-headers',
          '',
          `X-Broadside-Message: ${token}`,
          'Subject: Complained about',
          '',
          '--f--',
          '',
        ].join('\r\n'),
      );
      const { handleInboundReport } = await import('../../src/bounces/inbound/handle-report.js');
      await handleInboundReport(t.c, { raw: arf, mailFrom: null, rcptTo: 'bounces@bounces.example.com' });
      const paused = await e.waitForStatus(issue.id, 'paused');
      expect(paused).toMatchObject({ complaints: 1, rateAlert: { message: expect.stringMatching(/^complaint rate .* passed 0\.1 %/) } });
      expect(paused.queued).toBeGreaterThan(0);
    } finally {
      await t.close();
    }
  });
});
