import { readFileSync, readdirSync } from 'node:fs';
import { describe, expect, it } from '@jest/globals';
import { classifyRecipient, parseReport, statusCode, type InboundReport } from '../../src/bounces/inbound/report.js';

const FIXTURES = new URL('./fixtures/', import.meta.url);
const fixture = (name: string): Buffer => readFileSync(new URL(name, FIXTURES));
const parse = (name: string): Promise<InboundReport> => parseReport(fixture(name));

describe('parseReport on delivery status notifications', () => {
  it('reads a Postfix bounce with the returned message', async () => {
    const r = await parse('postfix-user-unknown.eml');
    expect(r.kind).toBe('dsn');
    expect(r.recipients).toEqual([
      {
        address: 'ann@example.org',
        action: 'failed',
        status: '5.1.1',
        diagnostic: '550 5.1.1 <ann@example.org>: Recipient address rejected: User unknown in virtual mailbox table',
        remoteMta: 'mx.example.org',
        class: 'hard',
      },
    ]);
    expect(r.original).toEqual({
      messageToken: 'm2s-0123456789abcdef',
      messageIdHeader: '<m2s-0123456789abcdef@example.com>',
      to: 'ann@example.org',
      returnPath: 'bounces+m2s-0123456789abcdef@bounce.example.com',
    });
    expect(r.envelopeToken).toBe('m2s-0123456789abcdef');
    expect(r.feedbackType).toBeNull();
    expect(r.reporter).toBe('mx.example.net');
    expect(r.subject).toBe('Undelivered Mail Returned to Sender');
  });

  it('gives the same result with CRLF line ends', async () => {
    const crlf = Buffer.from(fixture('postfix-user-unknown.eml').toString('utf8').replace(/\n/g, '\r\n'));
    expect(await parseReport(crlf)).toEqual(await parse('postfix-user-unknown.eml'));
  });

  it('reads an Exim bounce that returns only the headers (text/rfc822-headers)', async () => {
    const r = await parse('exim-headers-only.eml');
    expect(r.kind).toBe('dsn');
    expect(r.recipients).toMatchObject([{ address: 'bob@example.net', status: '5.2.1', remoteMta: 'mx2.example.net', class: 'hard' }]);
    expect(r.original.messageToken).toBe('m2t-fedcba9876543210');
    expect(r.original.returnPath).toBe('bounces+m2t-fedcba9876543210@bounce.example.com');
  });

  it('reads an Exchange DSN, taking the token from the Message-ID when no X-Broadside-Message was returned', async () => {
    const r = await parse('exchange-ndr.eml');
    expect(r.kind).toBe('dsn');
    expect(r.recipients).toMatchObject([
      {
        address: 'carol@example.org',
        action: 'failed',
        status: '5.1.10',
        class: 'hard',
        diagnostic: expect.stringContaining('RESOLVER.ADR.RecipientNotFound'),
      },
    ]);
    expect(r.original).toEqual({
      messageToken: 'm2u-00112233aabbccdd',
      messageIdHeader: '<m2u-00112233aabbccdd@example.com>',
      to: 'carol@example.org',
      returnPath: 'bounces+m2u-00112233aabbccdd@bounce.example.com',
    });
    expect(r.reporter).toBe('EXCH01.example.org');
  });

  it('reads a Gmail bounce with a multi-line diagnostic and a commented Remote-MTA', async () => {
    const r = await parse('gmail-no-such-user.eml');
    expect(r.kind).toBe('dsn');
    expect(r.recipients).toHaveLength(1);
    expect(r.recipients[0]).toMatchObject({ address: 'dave@example.org', status: '5.1.1', class: 'hard', remoteMta: 'mx.example.org' });
    expect(r.recipients[0]!.diagnostic).toMatch(/^550-5\.1\.1 The email account that you tried to reach does not exist\. .*550 5\.1\.1/);
    expect(r.original.messageToken).toBe('m2v-0f1e2d3c4b5a6978');
  });

  it('reads a delayed DSN (a warning, not a bounce) as other', async () => {
    const r = await parse('delayed.eml');
    expect(r.kind).toBe('dsn');
    expect(r.recipients).toMatchObject([{ address: 'gina@example.org', action: 'delayed', status: '4.4.7', class: 'other', remoteMta: null }]);
    expect(r.recipients[0]!.diagnostic).toContain('Connection timed out');
    expect(r.original.messageToken).toBe('m2y-0000111122223333');
  });

  it('reads every recipient of a DSN, each with its own class', async () => {
    const r = await parse('two-recipients.eml');
    expect(r.kind).toBe('dsn');
    expect(r.recipients.map((x) => [x.address, x.action, x.status, x.class])).toEqual([
      ['hank@example.org', 'failed', '5.2.2', 'hard'],
      ['ivy@example.net', 'delayed', '4.7.1', 'other'],
    ]);
    // Without an X-Broadside-Message header the Message-ID still names the message.
    expect(r.original.messageToken).toBe('m2z-4444555566667777');
  });

  it('reads a DSN without the original part, the status coming from the Diagnostic-Code', async () => {
    const r = await parse('missing-original.eml');
    expect(r.kind).toBe('dsn');
    expect(r.recipients).toMatchObject([{ address: 'ivan@example.org', action: 'failed', status: '5.1.1', class: 'hard' }]);
    expect(r.original).toEqual({ messageToken: null, messageIdHeader: null, to: null, returnPath: null });
    // The VERP address the report was sent to still names the message.
    expect(r.envelopeToken).toBe('m30-89abcdef01234567');
  });

  it('keeps non-ASCII text of a global (RFC 6533) DSN and falls back to a bare reply code', async () => {
    const r = await parse('non-ascii-diagnostic.eml');
    expect(r.kind).toBe('dsn');
    expect(r.recipients).toEqual([
      {
        address: 'müller@example.org',
        action: 'failed',
        status: '5.0.0',
        diagnostic: '550 Empfänger unbekannt – Postfach „müller“ existiert nicht',
        remoteMta: null,
        class: 'hard',
      },
    ]);
    expect(r.original.messageToken).toBe('m33-ffffeeeeddddcccc');
    expect(r.subject).toBe('Unzustellbar: Die Wöchentliche');
  });
});

describe('parseReport on abuse feedback reports (ARF)', () => {
  it('reads an abuse report with the original message (inline disposition)', async () => {
    const r = await parse('yahoo-arf-abuse.eml');
    expect(r.kind).toBe('arf');
    expect(r.feedbackType).toBe('abuse');
    expect(r.recipients).toEqual([]);
    expect(r.original).toEqual({
      messageToken: 'm2w-aaaaaaaaaaaaaaaa',
      messageIdHeader: '<m2w-aaaaaaaaaaaaaaaa@example.com>',
      to: 'erin@example.net',
      returnPath: 'bounces+m2w-aaaaaaaaaaaaaaaa@bounce.example.com',
    });
    expect(r.reporter).toBe('fbl.example.net');
    expect(r.envelopeToken).toBeNull();
  });

  it('reads a not-spam report with headers only, lower-casing the type and naming the From as reporter', async () => {
    const r = await parse('arf-not-spam.eml');
    expect(r.kind).toBe('arf');
    expect(r.feedbackType).toBe('not-spam');
    expect(r.original.messageToken).toBe('m2x-1234abcd1234abcd');
    expect(r.original.to).toBe('frank@example.org');
    expect(r.reporter).toBe('fbl@mail.example.org');
  });
});

describe('parseReport on bounces that are not RFC 3464', () => {
  it('reads a qmail bounce, keeping only recipients with a status code', async () => {
    const r = await parse('qmail-plain.eml');
    expect(r.kind).toBe('dsn');
    expect(r.recipients.map((x) => [x.address, x.action, x.status, x.class])).toEqual([
      ['judy@example.org', null, '5.1.1', 'hard'],
      ['karl@example.org', null, '5.1.2', 'hard'],
    ]);
    // The IP address 198.51.100.40 in the paragraph is not mistaken for a status.
    expect(r.recipients[0]!.remoteMta).toBe('198.51.100.40');
    expect(r.original).toEqual({
      messageToken: 'm31-abcdefabcdefabcd',
      messageIdHeader: '<m31-abcdefabcdefabcd@example.com>',
      to: 'judy@example.org',
      returnPath: 'bounces+m31-abcdefabcdefabcd@bounce.example.com',
    });
  });

  it('reads a multipart whose boundary does not match (mailparser drops its body)', async () => {
    const r = await parse('bad-boundary.eml');
    expect(r.kind).toBe('dsn');
    expect(r.recipients).toMatchObject([{ address: 'leo@example.org', status: '5.1.1', class: 'hard' }]);
    expect(r.original.messageToken).toBe('m32-0a0b0c0d0e0f0a0b');
  });

  it('calls a plain-text notice without a status unknown, but still finds the original headers', async () => {
    const raw = Buffer.from(
      [
        'From: postmaster@example.net',
        'Subject: Could not deliver',
        '',
        'Your message to <zoe@example.org> could not be delivered. Sorry.',
        '',
        '<zoe@example.org>:',
        'the mailbox is unavailable',
        '',
        'Original headers:',
        '',
        'To: zoe@example.org',
        'Message-ID: <m34-0123012301230123@example.com>',
        'Subject: The Weekly',
        '',
      ].join('\n'),
    );
    const r = await parseReport(raw);
    expect(r.kind).toBe('unknown');
    expect(r.recipients).toEqual([]);
    expect(r.original.messageToken).toBe('m34-0123012301230123');
    expect(r.original.to).toBe('zoe@example.org');
  });

  it('calls an ordinary message unknown', async () => {
    const r = await parseReport(Buffer.from('From: zoe@example.org\nSubject: Re: The Weekly\n\nThanks, loved issue 12! Call me at 555 1234.\n'));
    expect(r).toEqual({
      kind: 'unknown',
      recipients: [],
      feedbackType: null,
      original: { messageToken: null, messageIdHeader: null, to: null, returnPath: null },
      envelopeToken: null,
      envelopeId: null,
      reporter: 'zoe@example.org',
      subject: 'Re: The Weekly',
    });
  });

  it('reads Original-Envelope-Id (our ENVID) when it has the shape of a token', async () => {
    const dsn = (envid: string) =>
      Buffer.from(
        [
          'From: MAILER-DAEMON@mx.example.net',
          'To: bounces@bounces.example.com',
          'Subject: Undelivered Mail Returned to Sender',
          'MIME-Version: 1.0',
          'Content-Type: multipart/report; report-type=delivery-status; boundary="b"',
          '',
          '--b',
          'Content-Type: text/plain',
          '',
          'Your message could not be delivered.',
          '',
          '--b',
          'Content-Type: message/delivery-status',
          '',
          'Reporting-MTA: dns; mx.example.net',
          `Original-Envelope-Id: ${envid}`,
          'Arrival-Date: Tue, 24 Nov 2026 10:00:00 +0000',
          '',
          'Final-Recipient: rfc822; kim@example.net',
          'Action: failed',
          'Status: 5.1.1',
          'Diagnostic-Code: smtp; 550 5.1.1 unknown user',
          '',
          '--b--',
          '',
        ].join('\r\n'),
      );
    const r = await parseReport(dsn('M2S-0123456789ABCDEF'));
    expect(r.envelopeId).toBe('m2s-0123456789abcdef');
    expect(r.recipients).toMatchObject([{ address: 'kim@example.net', class: 'hard' }]);
    expect((await parseReport(dsn('QQ123-not-ours'))).envelopeId).toBeNull();
  });

  it('ignores a Message-ID that is not shaped like our token', async () => {
    const r = await parseReport(Buffer.from('Subject: x\n\n<a@example.org>:\n550 5.1.1 no\n\nMessage-ID: <M2S-0123456789ABCDEFG@example.com>\n'));
    expect(r.original.messageIdHeader).toBe('<M2S-0123456789ABCDEFG@example.com>');
    expect(r.original.messageToken).toBeNull();
  });
});

describe('parseReport on malformed input', () => {
  const fixtures = readdirSync(FIXTURES).filter((f) => f.endsWith('.eml'));

  it('never rejects on any truncation of any fixture', async () => {
    for (const name of fixtures) {
      const raw = fixture(name);
      for (let i = 1; i < 12; i++) {
        const r = await parseReport(raw.subarray(0, Math.floor((raw.length * i) / 12)));
        expect(['dsn', 'arf', 'unknown']).toContain(r.kind);
      }
    }
  });

  it('returns unknown for empty, garbage and binary input', async () => {
    const garbage = Buffer.from(Array.from({ length: 64 * 1024 }, (_, i) => (i * 7919 + (i >> 3)) % 256));
    for (const raw of [Buffer.alloc(0), Buffer.from('\r\n\r\n--\r\n'), Buffer.from('Content-Type: multipart/report; boundary=\n\n--\n--\n'), garbage]) {
      const r = await parseReport(raw);
      expect(r.kind).toBe('unknown');
      expect(r.recipients).toEqual([]);
    }
  });

  it('returns unknown for something that is not a Buffer at all', async () => {
    await expect(parseReport(null as unknown as Buffer)).resolves.toMatchObject({ kind: 'unknown' });
    await expect(parseReport('Subject: x' as unknown as Buffer)).resolves.toMatchObject({ kind: 'unknown' });
  });

  it('survives a 2 MB header, which mailparser refuses, and still reads the bounce behind it', async () => {
    const dsn = fixture('bad-boundary.eml').toString('utf8');
    const raw = Buffer.from(`X-Padding: ${'a'.repeat(2 * 1024 * 1024)}\n${dsn}`);
    const r = await parseReport(raw);
    expect(r.kind).toBe('dsn');
    expect(r.recipients).toMatchObject([{ address: 'leo@example.org', status: '5.1.1', class: 'hard' }]);
    expect(r.original.messageToken).toBe('m32-0a0b0c0d0e0f0a0b');
    const folded = Buffer.from(`X-Padding: a\n${' b\n'.repeat(300_000)}${dsn}`);
    const f = await parseReport(folded);
    expect(f.kind).toBe('dsn');
    expect(f.recipients).toMatchObject([{ address: 'leo@example.org', status: '5.1.1' }]);
    expect(f.subject).toBe('Undelivered Mail Returned to Sender');
  });

  it('handles a 2 MB bounce (a large returned message)', async () => {
    const text = fixture('postfix-user-unknown.eml').toString('utf8');
    const big = text.replace("Hello Ann, here is this week's issue.\n", `${'The Weekly is long this week. '.repeat(70_000)}\n`);
    expect(big.length).toBeGreaterThan(2 * 1024 * 1024);
    const r = await parseReport(Buffer.from(big));
    expect(r.kind).toBe('dsn');
    expect(r.recipients).toMatchObject([{ address: 'ann@example.org', status: '5.1.1', class: 'hard' }]);
    expect(r.original.messageToken).toBe('m2s-0123456789abcdef');
  });

  it('reads a bounce from the raw text when mailparser refuses it (more MIME parts than it allows)', async () => {
    const parts = Array.from({ length: 1100 }, (_, i) => `--P\nContent-Type: text/plain\n\npart ${i}\n`).join('');
    const dsn = 'Final-Recipient: rfc822; max@example.org\nAction: failed\nStatus: 5.1.1\n';
    const raw = Buffer.from(
      `Subject: many\nContent-Type: multipart/mixed; boundary="P"\n\n${parts}--P\nContent-Type: message/delivery-status\n\n${dsn}\n--P--\n`,
    );
    const r = await parseReport(raw);
    expect(r.kind).toBe('dsn');
    expect(r.recipients).toMatchObject([{ address: 'max@example.org', status: '5.1.1', class: 'hard' }]);
    expect(r.subject).toBe('many');
  });
});

describe('statusCode and classifyRecipient', () => {
  it.each([
    ['5.1.1', '5.1.1'],
    ['5.1.1 (bad destination mailbox)', '5.1.1'],
    ['smtp; 550-5.1.1 no such user', '5.1.1'],
    ['#5.1.10', '5.1.10'],
    ['4.04.007', '4.4.7'],
    ['connect to 10.4.5.6: timed out', null],
    ['from 192.0.2.25 said 550', null],
    [null, null],
  ])('statusCode(%j) is %j', (text, expected) => {
    expect(statusCode(text)).toBe(expected);
  });

  it.each([
    ['failed', '5.1.1', 'hard'],
    [null, '5.1.1', 'hard'],
    ['failed', '4.4.7', 'soft'],
    ['delayed', '4.4.7', 'other'],
    ['delayed', null, 'other'],
    ['delayed', '5.0.0', 'other'],
    ['delivered', '2.0.0', 'other'],
    ['relayed', '5.1.1', 'other'],
    ['expanded', null, 'other'],
    ['failed', null, 'other'],
  ] as const)('action %j with status %j is %s', (action, status, expected) => {
    expect(classifyRecipient(action, status)).toBe(expected);
  });
});
