import { readFileSync } from 'node:fs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import nodemailer from 'nodemailer';
import { startBounceListener, type BounceListener } from '../../src/bounces/listener.js';
import { createContainer } from '../../src/container.js';
import { bouncesOf, seedSubmittedSend, subscriberStatus } from '../support/bounces.js';
import { createTestContext, type TestContext } from '../support/context.js';

const DOMAIN = 'bounces.broadside.test';
const MAX_BYTES = 64 * 1024;

let t: TestContext;
let listener: BounceListener;

beforeAll(async () => {
  t = await createTestContext({ env: { BOUNCE_DOMAIN: DOMAIN, BOUNCE_MAX_BYTES: String(MAX_BYTES) } });
  listener = await startBounceListener({ c: t.c, port: 0, host: '127.0.0.1' });
});
afterEach(() => t.assertNoLeaks());
afterAll(async () => {
  // The listener first: it uses the context's pool.
  await listener?.close();
  await t?.close();
});

type SmtpReply = { ok: true; response: string; rejected: string[] } | { ok: false; responseCode: number | undefined; response: string; command: string | undefined };

/** Delivers `raw` over SMTP as a remote MTA would: null sender unless told, no TLS, no AUTH. */
async function deliver(raw: Buffer | string, to: string | string[], opts: { port?: number; from?: string } = {}): Promise<SmtpReply> {
  const transport = nodemailer.createTransport({ host: '127.0.0.1', port: opts.port ?? listener.port, secure: false, ignoreTLS: true });
  try {
    const info = await transport.sendMail({ envelope: { from: opts.from ?? '', to }, raw });
    return { ok: true, response: info.response, rejected: (info.rejected as string[]) ?? [] };
  } catch (err) {
    const e = err as { responseCode?: number; response?: string; command?: string; message: string };
    return { ok: false, responseCode: e.responseCode, response: e.response ?? e.message, command: e.command };
  } finally {
    transport.close();
  }
}

const fixture = (name: string): string => readFileSync(new URL(`./fixtures/${name}`, import.meta.url), 'utf8');
const postfixFor = (token: string): string => fixture('postfix-user-unknown.eml').split('m2s-0123456789abcdef').join(token);

/** The report the listener named in its 250 reply. */
async function reportOf(reply: SmtpReply): Promise<{ id: number; kind: string; mail_from: string | null; rcpt_to: string }> {
  const id = reply.ok ? /\breport (\d+)\b/.exec(reply.response)?.[1] : undefined;
  if (!id) throw new Error(`no report id in ${JSON.stringify(reply)}`);
  const { rows } = await t.c.pool.query('SELECT id, kind, mail_from, rcpt_to FROM inbound_reports WHERE id = $1', [Number(id)]);
  return rows[0];
}
const reportCount = async (): Promise<number> => (await t.c.pool.query('SELECT count(*)::int AS n FROM inbound_reports')).rows[0].n;

let readers = 0;
async function seedOne() {
  const s = await seedSubmittedSend(t, [`listener-${++readers}@readers.test`]);
  return s.messages[0]!;
}

describe('bounce listener: accepting reports', () => {
  it('accepts a DSN for bounces+<token>@BOUNCE_DOMAIN from the null sender, answers 250 with the report id, and records it', async () => {
    const m = await seedOne();
    const raw = postfixFor(m.token);
    const reply = await deliver(raw, `bounces+${m.token}@${DOMAIN}`);
    expect(reply).toMatchObject({ ok: true, response: expect.stringMatching(/^250 2\.0\.0 report \d+ stored$/) });
    const report = await reportOf(reply);
    expect(report).toMatchObject({ kind: 'dsn', mail_from: null, rcpt_to: `bounces+${m.token}@${DOMAIN}` });
    expect(await bouncesOf(t, 'report_id = $1', [report.id])).toEqual([expect.objectContaining({ type: 'hard', subscriber_id: m.subscriberId, matched_by: 'verp' })]);
    expect((await subscriberStatus(t, m.subscriberId)).status).toBe('bounced');
  });

  it('accepts plain bounces@ in any letter case, and the same bytes again are answered 250 and recorded once', async () => {
    const m = await seedOne();
    const raw = fixture('arf-not-spam.eml').split('m2x-1234abcd1234abcd').join(m.token);
    const first = await deliver(raw, `Bounces@${DOMAIN.toUpperCase()}`, { from: 'fbl@mail.example.org' });
    expect(first).toMatchObject({ ok: true, response: expect.stringMatching(/stored$/) });
    const again = await deliver(raw, `bounces@${DOMAIN}`, { from: 'fbl@mail.example.org' });
    expect(again).toMatchObject({ ok: true, response: expect.stringMatching(/already received$/) });
    const report = await reportOf(again);
    expect(report).toEqual(await reportOf(first));
    expect(report.mail_from).toBe('fbl@mail.example.org');
    expect(await bouncesOf(t, 'report_id = $1', [report.id])).toEqual([expect.objectContaining({ source: 'arf', type: 'other', feedback_type: 'not-spam', matched_by: 'message_id' })]);
  });

  it('with several accepted recipients, stores the mail once, for the first', async () => {
    const [a, b] = [await seedOne(), await seedOne()];
    const raw = `Subject: two\n\nnothing useful ${a.token}\n`;
    const before = await reportCount();
    const reply = await deliver(raw, [`bounces+${a.token}@${DOMAIN}`, `bounces+${b.token}@${DOMAIN}`]);
    expect((await reportOf(reply)).rcpt_to).toBe(`bounces+${a.token}@${DOMAIN}`);
    expect(await reportCount()).toBe(before + 1);
  });
});

describe('bounce listener: refusing', () => {
  it.each([
    ['someone else at the bounce domain', `someone@${DOMAIN}`],
    ['bounces@ at another domain', 'bounces@other.example'],
    ['a look-alike local part', `bouncesx@${DOMAIN}`],
  ])('refuses RCPT TO %s with 550 5.1.1', async (_what, to) => {
    const before = await reportCount();
    const reply = await deliver(postfixFor('m1-0000000000000000'), to);
    expect(reply).toMatchObject({ ok: false, responseCode: 550, response: expect.stringMatching(/^550 5\.1\.1 .*only takes bounce and feedback reports/) });
    expect(await reportCount()).toBe(before);
  });

  it('refuses a good recipient\'s neighbour but takes the mail for the good one', async () => {
    const raw = 'Subject: mixed\n\nhello\n';
    const reply = await deliver(raw, [`someone@${DOMAIN}`, `bounces@${DOMAIN}`]);
    expect(reply).toMatchObject({ ok: true, rejected: [`someone@${DOMAIN}`] });
    expect((await reportOf(reply)).rcpt_to).toBe(`bounces@${DOMAIN}`);
  });

  it('refuses a message over BOUNCE_MAX_BYTES with 552 and stores nothing', async () => {
    const before = await reportCount();
    const m = await seedOne();
    const raw = postfixFor(m.token).replace("Hello Ann, here is this week's issue.\n", `${'The Weekly is long this week.\n'.repeat(4000)}`);
    expect(raw.length).toBeGreaterThan(MAX_BYTES);
    const reply = await deliver(raw, `bounces+${m.token}@${DOMAIN}`);
    expect(reply).toMatchObject({ ok: false, responseCode: 552 });
    expect(await reportCount()).toBe(before);
    expect((await subscriberStatus(t, m.subscriberId)).status).toBe('active');
    // The connection-level refusal left the server answering.
    expect((await deliver('Subject: small\n\nok\n', `bounces@${DOMAIN}`)).ok).toBe(true);
  });
});

describe('bounce listener: malformed mail', () => {
  const truncated = (() => {
    const full = fixture('postfix-user-unknown.eml');
    return full.slice(0, full.indexOf('Content-Type: message/delivery-status') + 20);
  })();
  const junk = Buffer.from(Array.from({ length: 20_000 }, (_, i) => (i * 7919 + (i >> 3)) % 256));
  const brokenHeader = 'Content-Type: multipart/report; boundary=\nContent-Transfer-Encoding: base64\n\n--\n--\n=?utf-8?B?####?=\n';

  it.each([
    ['a truncated multipart', truncated],
    ['binary junk', junk],
    ['a broken MIME header', brokenHeader],
  ])('accepts %s, keeps it as an inbound report and a row, and keeps answering', async (what, raw) => {
    const reply = await deliver(raw, `bounces@${DOMAIN}`);
    expect(reply).toMatchObject({ ok: true, response: expect.stringMatching(/^250 /) });
    const report = await reportOf(reply);
    expect(report.kind).toBe('unknown');
    expect(await bouncesOf(t, 'report_id = $1', [report.id])).toEqual([
      expect.objectContaining({ type: 'other', subscriber_id: null, diagnostic: expect.stringMatching(/could not be read/) }),
    ]);
    // Still answering after it.
    const after = await deliver(`Subject: after ${what}\n\nok\n`, `bounces@${DOMAIN}`);
    expect(after.ok).toBe(true);
  });
});

describe('bounce listener: Postgres unavailable', () => {
  it('answers 451 4.3.0 and stores nothing; the same mail delivered later is recorded', async () => {
    const broken = await createContainer(t.config, { log: t.c.log });
    const down = await startBounceListener({ c: broken, port: 0, host: '127.0.0.1' });
    try {
      await broken.close();
      const m = await seedOne();
      const raw = postfixFor(m.token);
      const before = await reportCount();
      const reply = await deliver(raw, `bounces+${m.token}@${DOMAIN}`, { port: down.port });
      expect(reply).toMatchObject({ ok: false, responseCode: 451, response: expect.stringMatching(/^451 4\.3\.0 /) });
      expect(await reportCount()).toBe(before);
      expect((await subscriberStatus(t, m.subscriberId)).status).toBe('active');
      // The sender kept it and retries: nothing lost.
      expect((await deliver(raw, `bounces+${m.token}@${DOMAIN}`)).ok).toBe(true);
      expect((await subscriberStatus(t, m.subscriberId)).status).toBe('bounced');
    } finally {
      await down.close();
    }
  });
});
