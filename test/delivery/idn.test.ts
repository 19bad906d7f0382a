import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestContext, pathOf, type TestContext } from '../support/context.js';
import { copiesOf, editor, until, workersIdle } from '../support/editor.js';
import { addReaders, type Reader } from '../support/readers.js';
import type { ReceivedMail } from '../support/smtp-sink.js';

// Readers at internationalised domains, as the signup form stores them (`email` is the address as
// typed, with the domain in Unicode); and one whose part before @ is not ASCII, which the form
// refuses but an older import or a hand-made row may hold, and which only SMTPUTF8 can carry.
const IDN = { email: 'Anna.Schmidt@bücher.example', name: 'Jürgen Groß', ascii: 'Anna.Schmidt@xn--bcher-kva.example' };
const IDN_PLAIN_NAME = { email: 'kim@例え.テスト', name: null, ascii: 'kim@xn--r8jz45g.xn--zckzah' };
const UTF8_LOCAL = { email: 'jürgen@bücher.example', name: 'Jürgen' };

/** The header block as received, unfolded. */
function headBlock(m: ReceivedMail): string {
  return m.raw.slice(0, m.raw.indexOf('\r\n\r\n')).replace(/\r\n[ \t]+/g, ' ');
}
/** The addresses of the RCPT TO lines, as sent. */
const rcptTo = (m: ReceivedMail) => m.commands.flatMap((c) => /^RCPT TO:<([^>]*)>/i.exec(c)?.[1] ?? []);
const field = (m: ReceivedMail, name: string) => new RegExp(`^${name}: (.*)$`, 'mi').exec(headBlock(m))?.[1];
const ASCII_ONLY = /^[\x00-\x7f]*$/;

async function fixture(smtpUtf8: boolean, env: Record<string, string> = {}) {
  const t = await createTestContext({ worker: true, smtp: { smtpUtf8 }, env });
  const readers = await addReaders(t, [IDN, IDN_PLAIN_NAME, UTF8_LOCAL]);
  const e = editor(t);
  const issue = await e.createIssue('IDN week');
  const send = await e.trigger(issue.id);
  await e.waitForStatus(issue.id, 'done', 30_000);
  await workersIdle(t);
  return { t, readers, send, e };
}

type MessageRow = { status: string; smtp_response: string | null };
const messageOf = async (t: TestContext, sendId: number, reader: Reader): Promise<MessageRow> =>
  (await t.c.pool.query<MessageRow>('SELECT status::text, smtp_response FROM messages WHERE send_id = $1 AND subscriber_id = $2', [sendId, reader.id]))
    .rows[0]!;

describe('a send to readers at internationalised domains, through a relay without SMTPUTF8', () => {
  let f: Awaited<ReturnType<typeof fixture>>;
  beforeAll(async () => {
    // A sender at an internationalised domain too.
    f = await fixture(false, { MAIL_FROM: 'Bücher Post <news@bücher.example>' });
  }, 60_000);
  afterAll(() => f?.t.close());

  it('puts the ASCII (punycode) form of the domain in RCPT TO, keeping the local part as typed, without SMTPUTF8', () => {
    const copies = copiesOf(f.t, f.send.id);
    expect(copies).toHaveLength(2);
    expect(copies.flatMap(rcptTo).sort()).toEqual([IDN.ascii, IDN_PLAIN_NAME.ascii].sort());
    for (const m of copies) {
      expect(m.smtpUtf8).toBe(false);
      expect(m.commands.find((c) => /^MAIL FROM:/i.test(c))).toMatch(/^MAIL FROM:<news@xn--bcher-kva\.example>(?! .*SMTPUTF8)/);
    }
  });

  it('writes a To header of ASCII only: the punycode domain, a display name as an RFC 2047 encoded word', () => {
    const [idn] = copiesOf(f.t, f.send.id).filter((m) => m.commands.some((c) => c.includes(IDN.ascii)));
    expect(field(idn!, 'To')).toBe(`=?UTF-8?Q?J=C3=BCrgen_Gro=C3=9F?= <${IDN.ascii}>`);
    // The reader's mail program shows the name decoded.
    expect(idn!.parsed.to).toMatchObject({ value: [{ name: IDN.name }] });
    const [plain] = copiesOf(f.t, f.send.id).filter((m) => m.commands.some((c) => c.includes(IDN_PLAIN_NAME.ascii)));
    expect(field(plain!, 'To')).toBe(IDN_PLAIN_NAME.ascii);
    expect(field(plain!, 'From')).toBe('=?UTF-8?Q?B=C3=BCcher_Post?= <news@xn--bcher-kva.example>');
    expect(field(plain!, 'Message-ID')).toMatch(/@xn--bcher-kva\.example>$/);
    // The whole message stays 7-bit: no 8BITMIME or SMTPUTF8 needed from the relay.
    for (const m of copiesOf(f.t, f.send.id)) expect(m.raw).toMatch(ASCII_ONLY);
  });

  it('records the copy for a non-ASCII local part as failed, with the reason, and neither bounces nor suppresses the reader', async () => {
    const [idn, plain, utf8] = f.readers;
    expect(await messageOf(f.t, f.send.id, idn!)).toMatchObject({ status: 'submitted' });
    expect(await messageOf(f.t, f.send.id, plain!)).toMatchObject({ status: 'submitted' });
    const failed = await messageOf(f.t, f.send.id, utf8!);
    expect(failed.status).toBe('failed');
    expect(failed.smtp_response).toMatch(/SMTPUTF8/);
    // Nothing was offered to the relay for that reader, and nothing counts against them.
    expect(f.t.smtp.commands.filter((c) => /[^\x00-\x7f]/.test(c))).toEqual([]);
    const { rows } = await f.t.c.pool.query('SELECT status::text FROM subscribers ORDER BY id');
    expect(rows.map((r) => r.status)).toEqual(['active', 'active', 'active']);
    expect(Number((await f.t.c.pool.query('SELECT count(*) FROM bounces')).rows[0].count)).toBe(0);
    expect(await f.e.progress(f.send.issueId)).toMatchObject({ submitted: 2, failed: 1, bounced: 0 });
  });
});

describe('a send to readers at internationalised domains, through a relay that offers SMTPUTF8', () => {
  let f: Awaited<ReturnType<typeof fixture>>;
  beforeAll(async () => {
    f = await fixture(true);
  }, 60_000);
  afterAll(() => f?.t.close());

  it('still sends an address that does not need it in ASCII, without SMTPUTF8', () => {
    const copies = copiesOf(f.t, f.send.id).filter((m) => m.commands.some((c) => c.includes(IDN.ascii)));
    expect(copies).toHaveLength(1);
    expect(copies[0]!.smtpUtf8).toBe(false);
    expect(copies[0]!.raw).toMatch(ASCII_ONLY);
  });

  it('sends a non-ASCII local part with SMTPUTF8, the address in UTF-8 in RCPT TO and in To', async () => {
    const [utf8] = copiesOf(f.t, f.send.id).filter((m) => m.smtpUtf8);
    expect(utf8).toBeDefined();
    expect(utf8!.commands.find((c) => /^MAIL FROM:/i.test(c))).toMatch(/ SMTPUTF8\b/);
    expect(rcptTo(utf8!)).toEqual([UTF8_LOCAL.email]);
    // Under SMTPUTF8 the address is UTF-8 in the header too (RFC 6532); the name stays an encoded word.
    expect(field(utf8!, 'To')).toBe(`=?UTF-8?Q?J=C3=BCrgen?= <${UTF8_LOCAL.email}>`);
    expect(await messageOf(f.t, f.send.id, f.readers[2]!)).toMatchObject({ status: 'submitted' });
    expect(await f.e.progress(f.send.issueId)).toMatchObject({ submitted: 3, failed: 0, bounced: 0 });
  });
});

describe('reader mail and test copies to an internationalised domain', () => {
  let t: TestContext;
  beforeAll(async () => {
    t = await createTestContext({ worker: true, smtp: { smtpUtf8: false } });
  }, 60_000);
  afterAll(() => t?.close());

  it('sends the confirmation with the punycode domain in RCPT TO and in To', async () => {
    const res = await t.app.inject({ method: 'POST', url: '/subscribe', payload: { email: 'Lena@Bücher.Example', name: 'Lena Müller' } });
    expect(res.statusCode).toBe(202);
    const mail = await t.smtp.waitFor((m) => m.parsed.subject?.startsWith('Confirm') ?? false);
    expect(rcptTo(mail)).toEqual(['Lena@xn--bcher-kva.example']);
    expect(field(mail, 'To')).toBe('Lena@xn--bcher-kva.example');
    expect(headBlock(mail)).toMatch(ASCII_ONLY);
  });

  it('gives up at once on a welcome to a non-ASCII local part when the relay lacks SMTPUTF8, sending nothing', async () => {
    const [reader] = await addReaders(t, [{ email: UTF8_LOCAL.email, status: 'pending' }]);
    const confirmUrl = t.c.links.confirm(reader!.id);
    const confirmed = await t.app.inject({ method: 'POST', url: pathOf(confirmUrl), headers: { accept: 'application/json' } });
    expect(confirmed.json()).toEqual({ status: 'active' });
    const job = await until('the welcome job to fail', async () => {
      const failed = await t.c.queues.readerMail.getJobs(['failed']);
      return failed.find((j) => j.data.subscriberId === reader!.id);
    });
    // Not retried: the relay would refuse it every time.
    expect(job.attemptsMade).toBe(1);
    expect(job.failedReason).toMatch(/needs SMTPUTF8/);
    expect(t.smtp.commands.filter((c) => /[^\x00-\x7f]/.test(c))).toEqual([]);
  });

  it('sends test copies with the punycode domain in RCPT TO and in To', async () => {
    const e = editor(t);
    const issue = await e.createIssue('IDN test copy');
    const res = await e.api('POST', `/api/issues/${issue.id}/test`, { to: ['Test@Bücher.example'] });
    expect(res.statusCode).toBe(200);
    const mail = await until('the test copy', () => t.smtp.messages.find((m) => m.parsed.subject?.startsWith('[Test]')));
    expect(rcptTo(mail)).toEqual(['Test@xn--bcher-kva.example']);
    expect(field(mail, 'To')).toBe('Test@xn--bcher-kva.example');
    expect(headBlock(mail)).toMatch(ASCII_ONLY);
  });
});
