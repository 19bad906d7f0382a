import { readFileSync } from 'node:fs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { startBounceListener, type BounceListener } from '../../src/bounces/inbound/listener.js';
import { createContainer } from '../../src/container.js';
import { bouncesOf, seedSubmittedSend, subscriberStatus } from '../support/bounces.js';
import { createTestContext, type TestContext } from '../support/context.js';
import { until } from '../support/editor.js';
import { deliver as deliverTo, openConnection, type OpenConnection, type SmtpReply } from '../support/smtp-client.js';
import { parseNetwork } from '../../src/config/networks.js';

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

/** Delivers to the listener of this file unless told another port. */
const deliver = (raw: Buffer | string, to: string | string[], opts: { port?: number; from?: string; localAddress?: string } = {}): Promise<SmtpReply> =>
  deliverTo(raw, to, { ...opts, port: opts.port ?? listener.port });

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
    expect(await bouncesOf(t, 'report_id = $1', [report.id])).toEqual([
      expect.objectContaining({ type: 'hard', subscriber_id: m.subscriberId, matched_by: 'verp' }),
    ]);
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
    expect(await bouncesOf(t, 'report_id = $1', [report.id])).toEqual([
      expect.objectContaining({ source: 'arf', type: 'other', feedback_type: 'not-spam', matched_by: 'message_id' }),
    ]);
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

  it("refuses a good recipient's neighbour but takes the mail for the good one", async () => {
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

describe('bounce listener: limits', () => {
  type Limits = Partial<
    Pick<
      TestContext['config'],
      | 'bounceMaxConnections'
      | 'bounceMaxConnectionsPerIp'
      | 'bounceMessagesPerIpPerMinute'
      | 'bounceMaxRecipients'
      | 'bounceBufferBytes'
      | 'bounceMaxBytes'
      | 'bounceTrustedIps'
    >
  >;
  const open: OpenConnection[] = [];
  const started: BounceListener[] = [];

  /** A listener of its own with these limits (each keeps its own counts). */
  async function limited(limits: Limits): Promise<BounceListener> {
    const l = await startBounceListener({ c: { ...t.c, config: { ...t.c.config, ...limits } }, port: 0, host: '127.0.0.1' });
    started.push(l);
    return l;
  }
  async function connect(l: BounceListener, from?: string): Promise<OpenConnection> {
    const conn = await openConnection(l.port, from);
    open.push(conn);
    return conn;
  }
  afterEach(async () => {
    await Promise.all(open.splice(0).map((c) => c.close()));
    await Promise.all(started.splice(0).map((l) => l.close()));
  });

  const dsn = async () => {
    const m = await seedOne();
    return { m, raw: postfixFor(m.token), to: `bounces+${m.token}@${DOMAIN}` };
  };

  it('refuses connections past BOUNCE_MAX_CONNECTIONS with 421 4.7.0, and takes them again once one closes', async () => {
    const l = await limited({ bounceMaxConnections: 3 });
    const held = [await connect(l, '127.0.0.2'), await connect(l, '127.0.0.3'), await connect(l, '127.0.0.4')];
    expect(held.map((c) => c.greeting)).toEqual([expect.stringMatching(/^220 /), expect.stringMatching(/^220 /), expect.stringMatching(/^220 /)]);
    const fourth = await connect(l, '127.0.0.5');
    expect(fourth.greeting).toMatch(/^421 4\.7\.0 too many connections right now/);
    await until('the refused connection to be closed by the server', () => fourth.closed);
    const { raw, to } = await dsn();
    expect(await deliver(raw, to, { port: l.port, localAddress: '127.0.0.5' })).toMatchObject({ ok: false, responseCode: 421 });

    await held[0]!.close();
    const reply = await until('a connection to be taken again', async () => {
      const r = await deliver(raw, to, { port: l.port, localAddress: '127.0.0.5' });
      return r.ok && r;
    });
    expect(reply.response).toMatch(/^250 2\.0\.0 report \d+ stored$/);
  });

  it('refuses connections from one address past BOUNCE_MAX_CONNECTIONS_PER_IP with 421 4.7.0, while another address is served', async () => {
    const l = await limited({ bounceMaxConnectionsPerIp: 2 });
    const first = [await connect(l, '127.0.0.2'), await connect(l, '127.0.0.2')];
    expect(first.every((c) => c.greeting.startsWith('220 '))).toBe(true);
    const third = await connect(l, '127.0.0.2');
    expect(third.greeting).toBe('421 4.7.0 too many connections from 127.0.0.2 (at most 2 at once), try again later');

    const { m, raw, to } = await dsn();
    expect(await deliver(raw, to, { port: l.port, localAddress: '127.0.0.2' })).toMatchObject({ ok: false, responseCode: 421 });
    const other = await deliver(raw, to, { port: l.port, localAddress: '127.0.0.3' });
    expect(other).toMatchObject({ ok: true, response: expect.stringMatching(/ stored$/) });
    expect((await subscriberStatus(t, m.subscriberId)).status).toBe('bounced');
  });

  it('takes BOUNCE_MESSAGES_PER_IP_PER_MINUTE mails from one address, then answers 451 4.7.1 at MAIL FROM and stores nothing; another address is unaffected', async () => {
    const l = await limited({ bounceMessagesPerIpPerMinute: 3 });
    const before = await reportCount();
    for (let i = 0; i < 3; i++) {
      expect(await deliver(`Subject: report ${i} ${Date.now()}\n\nhello\n`, `bounces@${DOMAIN}`, { port: l.port, localAddress: '127.0.0.2' })).toMatchObject({
        ok: true,
      });
    }
    const { m, raw, to } = await dsn();
    const fourth = await deliver(raw, to, { port: l.port, localAddress: '127.0.0.2' });
    expect(fourth).toMatchObject({
      ok: false,
      responseCode: 451,
      command: 'MAIL FROM',
      response: expect.stringMatching(/^451 4\.7\.1 too many mails from 127\.0\.0\.2 \(at most 3 a minute\), try again in \d+ s$/),
    });
    // Several transactions on one connection count one by one (RSET and MAIL again).
    const conn = await connect(l, '127.0.0.2');
    await conn.command('EHLO mta.example.org');
    expect(await conn.command('MAIL FROM:<>')).toMatch(/^451 4\.7\.1 /);
    expect(await reportCount()).toBe(before + 3);
    expect((await subscriberStatus(t, m.subscriberId)).status).toBe('active');

    expect(await deliver(raw, to, { port: l.port, localAddress: '127.0.0.3' })).toMatchObject({ ok: true });
    expect((await subscriberStatus(t, m.subscriberId)).status).toBe('bounced');
  });

  it("exempts BOUNCE_TRUSTED_IPS (the operator's own relay) from the per-address limits", async () => {
    const l = await limited({ bounceMaxConnectionsPerIp: 1, bounceMessagesPerIpPerMinute: 1, bounceTrustedIps: [parseNetwork('127.0.0.8/30')] });
    const conns = [await connect(l, '127.0.0.9'), await connect(l, '127.0.0.9'), await connect(l, '127.0.0.9')];
    expect(conns.map((c) => c.greeting.slice(0, 4))).toEqual(['220 ', '220 ', '220 ']);
    for (let i = 0; i < 3; i++) {
      expect(await deliver(`Subject: relayed ${i} ${Date.now()}\n\nhello\n`, `bounces@${DOMAIN}`, { port: l.port, localAddress: '127.0.0.10' })).toMatchObject({
        ok: true,
      });
    }
    // Next door, outside the /30, the limits hold.
    expect(await deliver('Subject: a\n\nhello\n', `bounces@${DOMAIN}`, { port: l.port, localAddress: '127.0.0.12' })).toMatchObject({ ok: true });
    expect(await deliver('Subject: b\n\nhello\n', `bounces@${DOMAIN}`, { port: l.port, localAddress: '127.0.0.12' })).toMatchObject({
      ok: false,
      responseCode: 451,
    });
  });

  it('accepts BOUNCE_MAX_RECIPIENTS recipients in one mail, answers 452 to the rest, and stores the mail once', async () => {
    const l = await limited({ bounceMaxRecipients: 3 });
    const before = await reportCount();
    const to = Array.from({ length: 200 }, (_, i) => `bounces+r${i}@${DOMAIN}`);
    const reply = await deliver(`Subject: many recipients ${Date.now()}\n\nhello\n`, to, { port: l.port });
    expect(reply).toMatchObject({ ok: true });
    if (!reply.ok) return;
    expect(reply.rejected).toEqual(to.slice(3));
    // smtp-server's own reply (RFC 5321 4.5.3.1.10): the sender sends the rest again later.
    expect(new Set(reply.rejectedErrors.map((e) => e.response))).toEqual(new Set(['452 Error: too many recipients']));
    expect(await reportCount()).toBe(before + 1);
  });

  it('refuses a SIZE= over BOUNCE_MAX_BYTES at MAIL FROM, before any byte of the mail', async () => {
    const conn = await connect(listener);
    await conn.command('EHLO mta.example.org');
    expect(await conn.command(`MAIL FROM:<> SIZE=${MAX_BYTES + 1}`)).toBe(`552 Error: message exceeds fixed maximum message size ${MAX_BYTES}`);
    expect(await conn.command(`MAIL FROM:<> SIZE=${MAX_BYTES}`)).toMatch(/^250 /);
  });

  /** Starts a mail by hand and sends `bytes` of its body, without ending it. */
  async function startMail(l: BounceListener, from: string, bytes: number): Promise<OpenConnection> {
    const conn = await connect(l, from);
    expect(conn.greeting).toMatch(/^220 /);
    expect(await conn.command('EHLO mta.example.org')).toMatch(/^250/);
    expect(await conn.command('MAIL FROM:<>')).toMatch(/^250 /);
    expect(await conn.command(`RCPT TO:<bounces@${DOMAIN}>`)).toMatch(/^250 /);
    expect(await conn.command('DATA')).toMatch(/^354 /);
    await conn.write(`Subject: held open ${from} ${Date.now()}\r\n\r\n${'x'.repeat(76)}\r\n`.padEnd(bytes, 'y'));
    return conn;
  }

  it('holds at most BOUNCE_BUFFER_BYTES of mail at once: a big mail past it gets 452 4.3.1, a DSN-sized one is still taken', async () => {
    const kib = 1024;
    const l = await limited({ bounceBufferBytes: 128 * kib, bounceMaxBytes: 128 * kib });
    const before = await reportCount();
    // One mail in the middle of its DATA holds 100 KiB of the 128.
    const holder = await startMail(l, '127.0.0.2', 100 * kib);
    // (The parser keeps a mail's last 4 bytes back until it sees whether they end it.)
    await until('the first mail to be held', () => l.bufferedBytes >= 99 * kib);

    // Another 100 KiB would pass the budget: refused, and what it held let go at once.
    const big = `Subject: big ${Date.now()}\n\n${'z'.repeat(76)}\n`.padEnd(100 * kib, 'z');
    const refused = await deliver(big, `bounces@${DOMAIN}`, { port: l.port, localAddress: '127.0.0.3' });
    expect(refused).toMatchObject({ ok: false, responseCode: 452, response: '452 4.3.1 too much mail being received right now, try again later' });
    expect(l.bufferedBytes).toBeLessThanOrEqual(128 * kib);

    // A DSN is never refused for memory: its first 64 KiB always fit.
    const { m, raw, to } = await dsn();
    expect(await deliver(raw, to, { port: l.port, localAddress: '127.0.0.4' })).toMatchObject({ ok: true });
    expect((await subscriberStatus(t, m.subscriberId)).status).toBe('bounced');

    // The held mail ends and is stored; the budget is free again, and the big mail goes through.
    await holder.write('\r\n.\r\n');
    expect(await holder.reply()).toMatch(/^250 2\.0\.0 report \d+ stored$/);
    await until('the budget to be free', () => l.bufferedBytes === 0);
    expect(await deliver(big, `bounces@${DOMAIN}`, { port: l.port, localAddress: '127.0.0.3' })).toMatchObject({ ok: true });
    expect(await reportCount()).toBe(before + 3);
  });

  it('lets go of what a mail held when its sender cuts the connection in the middle of DATA', async () => {
    const l = await limited({ bounceMaxBytes: 1024 * 1024 });
    const before = await reportCount();
    const conns = await Promise.all(['127.0.0.2', '127.0.0.3', '127.0.0.4'].map((from) => startMail(l, from, 200 * 1024)));
    await until('the three mails to be held', () => l.bufferedBytes >= 3 * 199 * 1024);
    await Promise.all(conns.map((c) => c.close()));
    await until('the budget to be free', () => l.bufferedBytes === 0);
    expect(await reportCount()).toBe(before);
    expect(await deliver('Subject: after the cut\n\nok\n', `bounces@${DOMAIN}`, { port: l.port })).toMatchObject({ ok: true });
  });
});
