import { beforeAll, describe, expect, it } from '@jest/globals';
import { simpleParser, type AddressObject, type ParsedMail } from 'mailparser';
import DataStream from 'nodemailer/lib/smtp-connection/data-stream';
import { isMarkedSmtpReady, nodemailerDotStuffing } from '../../src/delivery/dot-stuffing.js';
import { formatAddress, IssueMime, type IssueMimeHeaders, type ReaderCopy } from '../../src/delivery/mime-template.js';
import { IssueRenderer, loadIssueTemplateFiles, personalise, type CompiledIssue, type IssueReaderVars } from '../../src/rendering/issue.js';
import { emailsDir } from '../../src/rendering/reader-mail.js';
import { fill, parseTemplate, type Template } from '../../src/rendering/template.js';

// &, quotes, |, <, emoji, em dash, non-ASCII.
const SUBJECT = `Tom & Jerry's "best" | <50 ms 📬 — café Zürich [final]`;
const LONG_URL = `https://news.example.org/unsubscribe/u.3f.0.${'A1b2C3d4'.repeat(12)}?utm_source=newsletter&utm_medium=email&x=1=2`;

const headers: IssueMimeHeaders = {
  from: formatAddress('news@example.org', 'The Relay'),
  subject: SUBJECT,
  listId: 'The Relay <the-relay.example.org>',
  feedbackId: 'issue7:send3:newsletter:broadside',
};

function readerVars(o: Partial<IssueReaderVars> = {}): IssueReaderVars {
  return {
    newsletter: 'The Relay',
    issue_date: '3 March 2026',
    greeting: 'Hi Zoë "Zed" O\'Brien <zed>,',
    unsubscribe_url: LONG_URL,
    manage_url: 'https://news.example.org/manage/m.3f.0.x=y&z=%C3%A9',
    postal_address: "1 Rue de l'Église, 75001 Paris — France",
    ...o,
  };
}

function copy(vars: Record<string, string>, to: ReaderCopy['to'] = { address: 'zed@example.com', name: 'Zoë "Zed" O\'Brien' }): ReaderCopy {
  return {
    to,
    messageIdHeader: 'm2s-0123456789abcdef@example.org',
    messageToken: 'm2s-0123456789abcdef',
    unsubscribeUrl: vars.unsubscribe_url ?? LONG_URL,
    vars,
    date: new Date('2026-03-03T10:00:00Z'),
  };
}

/** What nodemailer's own DataStream (its dot-stuffing, as shipped) sends for `raw` as DATA. */
function onTheWire(raw: Buffer): Promise<Buffer> {
  const s = new DataStream();
  (s as unknown as { _transform: typeof nodemailerDotStuffing })._transform = nodemailerDotStuffing;
  const parts: Buffer[] = [];
  s.on('data', (d: Buffer) => parts.push(d));
  return new Promise((resolve, reject) => {
    s.on('error', reject);
    s.on('end', () => resolve(Buffer.concat(parts)));
    s.end(raw);
  });
}

/**
 * A copy marked SMTP-ready goes into DATA unscanned: nodemailer's rules must leave it exactly as
 * it is (only the final dot added). Returns whether it was marked.
 */
async function expectSafeUnscanned(raw: Buffer): Promise<boolean> {
  if (isMarkedSmtpReady(raw)) expect((await onTheWire(raw)).equals(Buffer.concat([raw, Buffer.from('.\r\n')]))).toBe(true);
  return isMarkedSmtpReady(raw);
}

/** Splits a built message into header lines and body lines (CRLF). */
function linesOf(raw: Buffer): { head: string[]; body: string[] } {
  const s = raw.toString('latin1');
  const end = s.indexOf('\r\n\r\n');
  return { head: s.slice(0, end).split('\r\n'), body: s.slice(end + 4).split('\r\n') };
}

const boundaryOf = (raw: Buffer) => /boundary="([^"]+)"/.exec(raw.toString('latin1'))?.[1];

/** The physical lines of one header field: its first line and its continuation lines. */
function fieldLines(raw: Buffer, name: string): string[] {
  const { head } = linesOf(raw);
  const start = head.findIndex((l) => l.toLowerCase().startsWith(`${name.toLowerCase()}:`));
  if (start < 0) return [];
  let end = start + 1;
  while (end < head.length && /^[ \t]/.test(head[end]!)) end++;
  return head.slice(start, end);
}

/** A header's unfolded value as sent. */
function headerOf(parsed: ParsedMail, name: string): string | undefined {
  const line = parsed.headerLines.find((h) => h.key === name.toLowerCase())?.line;
  return line
    ?.slice(line.indexOf(':') + 1)
    .replace(/\r?\n[ \t]+/g, ' ')
    .trim();
}

function toOf(parsed: ParsedMail): AddressObject['value'] | undefined {
  return parsed.to && !Array.isArray(parsed.to) ? parsed.to.value : undefined;
}

/** What every built message must be on the wire. */
function expectWellFormed(raw: Buffer): void {
  const s = raw.toString('latin1');
  // 7-bit only: no byte above 127, and no NUL.
  expect([...raw].filter((b) => b > 127 || b === 0)).toEqual([]);
  // CRLF line endings only: no bare CR, no bare LF.
  expect(s).not.toMatch(/\r(?!\n)|(?<!\r)\n/);
  const { head, body } = linesOf(raw);
  // RFC 5322: header lines at most 998 characters; the body at most 78 per line.
  expect(head.filter((l) => l.length > 998)).toEqual([]);
  expect(body.filter((l) => l.length > 78)).toEqual([]);
  // The boundary appears only as the delimiters of the two parts and the close.
  const boundary = boundaryOf(raw)!;
  expect(boundary).toBeTruthy();
  expect(body.filter((l) => l === `--${boundary}`)).toHaveLength(2);
  expect(body.filter((l) => l === `--${boundary}--`)).toHaveLength(1);
  expect(s.split(boundary)).toHaveLength(1 + 1 + 3);
}

describe('IssueMime with a compiled issue', () => {
  let issue: CompiledIssue;
  let mime: IssueMime;

  beforeAll(async () => {
    const renderer = new IssueRenderer(await loadIssueTemplateFiles(emailsDir), 'https://news.example.org');
    issue = await renderer.compile({
      subject: SUBJECT,
      preheader: 'A teaser — with “quotes” & = signs',
      slug: 'tom-and-jerry',
      markdown: [
        'Hello and welcome: **this week** in brief. 2 + 2 = 4, and a=b is not a == b.',
        '',
        '## Markets & "money" | 📈',
        '',
        `A link that is far too long for one line: [read it](${LONG_URL}) and ${LONG_URL} as text.`,
        '',
        `${'A paragraph that goes on for a while with café, naïve, Zürich and “curly quotes” — '.repeat(6)}`,
        '',
        '## People moves',
        '',
        '- Ana María → Lisbon',
        '- Łukasz Żółć ← Kraków',
        '- 日本語のテキスト',
      ].join('\n'),
    });
    mime = new IssueMime(headers, { html: issue.html, text: issue.text });
  });

  it('round-trips through mailparser: both parts are exactly the personalised issue', async () => {
    const vars = readerVars();
    const raw = mime.build(copy(vars));
    const parsed = await simpleParser(raw);
    const expected = personalise(issue, vars);
    expect(parsed.html).toBe(expected.html);
    expect(parsed.text).toBe(expected.text);
    expect(parsed.subject).toBe(SUBJECT);
    expect(toOf(parsed)).toEqual([{ address: 'zed@example.com', name: 'Zoë "Zed" O\'Brien' }]);
    expect(parsed.from?.value).toEqual([{ address: 'news@example.org', name: 'The Relay' }]);
    expect(parsed.messageId).toBe('<m2s-0123456789abcdef@example.org>');
    expect(parsed.date?.toISOString()).toBe('2026-03-03T10:00:00.000Z');
    expect(headerOf(parsed, 'list-unsubscribe')).toBe(`<${LONG_URL}>`);
    expect(headerOf(parsed, 'list-unsubscribe-post')).toBe('List-Unsubscribe=One-Click');
    expect(headerOf(parsed, 'list-id')).toBe('The Relay <the-relay.example.org>');
    expect(headerOf(parsed, 'x-broadside-message')).toBe('m2s-0123456789abcdef');
    expect(headerOf(parsed, 'feedback-id')).toBe('issue7:send3:newsletter:broadside');
    expect(headerOf(parsed, 'mime-version')).toBe('1.0');
    // The personalised values are in there, escaped in the HTML.
    expect(parsed.html).toContain('Hi Zoë &quot;Zed&quot; O&#39;Brien &lt;zed&gt;,');
    expect(parsed.html).toContain(`href="${LONG_URL.replace(/&/g, '&amp;')}"`);
    expect(parsed.text).toContain(LONG_URL);
  });

  it('is 7-bit, CRLF-only, with short lines and a boundary found nowhere else; ready for DATA as it is', async () => {
    const raw = mime.build(copy(readerVars()));
    expectWellFormed(raw);
    expect(await expectSafeUnscanned(raw)).toBe(true);
    const s = raw.toString('latin1');
    expect(s).toMatch(/\r\nContent-Type: multipart\/alternative; boundary="[^"]+"\r\n/);
    expect(s.match(/Content-Transfer-Encoding: quoted-printable/g)).toHaveLength(2);
    expect(s.match(/Content-Type: text\/(plain|html); charset=utf-8/g)).toEqual([
      'Content-Type: text/plain; charset=utf-8',
      'Content-Type: text/html; charset=utf-8',
    ]);
  });

  it('keeps readers apart: two builds differ only by the reader, and the issue parts are shared', async () => {
    const a = readerVars({ greeting: 'Hi Ann,', unsubscribe_url: 'https://news.example.org/unsubscribe/ann' });
    const b = readerVars({ greeting: 'Hi Bob,', unsubscribe_url: 'https://news.example.org/unsubscribe/bob' });
    const [pa, pb] = await Promise.all([simpleParser(mime.build(copy(a))), simpleParser(mime.build(copy(b)))]);
    expect(pa.html).toBe(personalise(issue, a).html);
    expect(pb.html).toBe(personalise(issue, b).html);
    expect(pb.html).not.toContain('Hi Ann,');
    expect(headerOf(pa, 'list-unsubscribe')).toBe('<https://news.example.org/unsubscribe/ann>');
    expect(headerOf(pb, 'list-unsubscribe')).toBe('<https://news.example.org/unsubscribe/bob>');
  });

  it('refuses to build when a reader value is missing', () => {
    const { greeting: _dropped, ...partial } = readerVars();
    expect(() => mime.build(copy(partial))).toThrow(/greeting/);
  });
});

describe('IssueMime with awkward templates and values', () => {
  /** A small deterministic generator, so that a failure can be replayed. */
  function rng(seed: number) {
    let s = seed >>> 0;
    return () => {
      s = (s * 1664525 + 1013904223) >>> 0;
      return s / 2 ** 32;
    };
  }
  const ALPHABET = ['a', 'b', 'Z', ' ', ' ', '=', '.', '-', '\t', '\n', 'é', 'ü', '—', '“', '📬', '日', '&', '<', '"', "'", '=?', '?=', '=_', '%', '\u00a0'];
  const text = (next: () => number, max: number) =>
    Array.from({ length: Math.floor(next() * max) }, () => ALPHABET[Math.floor(next() * ALPHABET.length)]!).join('');
  const word = (next: () => number, len: number) => Array.from({ length: len }, () => 'abcdefghij'[Math.floor(next() * 10)]).join('');

  it.each([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12])('round-trips random parts and values exactly (seed %i)', async (seed) => {
    const next = rng(seed);
    const slots = ['greeting', 'unsubscribe_url', 'manage_url', 'v1', 'v2'];
    // Parts of every length (including empty, so slots touch), long unbroken runs and line ends.
    const source =
      Array.from({ length: 12 }, (_, i) => {
        const literal = next() < 0.2 ? '' : next() < 0.3 ? word(next, 60 + Math.floor(next() * 40)) : text(next, 200);
        return `${literal}{{${slots[i % slots.length]}}}`;
      }).join('') + text(next, 100);
    const html = parseTemplate(source, true);
    const plain = parseTemplate(source, false);
    const vars: Record<string, string> = {
      greeting: text(next, 40),
      unsubscribe_url: `https://x.example/unsubscribe/${word(next, 90)}?a=1&b=${word(next, 10)}`,
      manage_url: '',
      v1: word(next, 150),
      v2: text(next, 300),
    };
    const mime = new IssueMime(headers, { html, text: plain });
    const raw = mime.build(copy(vars));
    expectWellFormed(raw);
    const parsed = await simpleParser(raw);
    expect(parsed.html).toBe(fill(html, vars));
    expect(parsed.text).toBe(fill(plain, vars));
    // Dots and line ends anywhere in the template and the values: still built ready for DATA.
    expect(await expectSafeUnscanned(raw)).toBe(true);
  });

  it('writes a dot that starts a line as "=2E", so no copy needs dot-stuffing, and decodes it exactly', async () => {
    const t = `.{{v}}\n..x\n${'y'.repeat(72)}.z\n${'w'.repeat(73)}..\n.\n{{v}}.\n`;
    const [html, plain] = [parseTemplate(t, true), parseTemplate(t, false)];
    const mime = new IssueMime(headers, { html, text: plain });
    for (const v of ['.', '..\n.', `${'q'.repeat(73)}.`, '\n.\n', 'plain']) {
      const raw = mime.build(copy({ v }));
      expectWellFormed(raw);
      expect(raw.toString('latin1')).not.toMatch(/\n\./);
      expect(await expectSafeUnscanned(raw)).toBe(true);
      const parsed = await simpleParser(raw);
      expect(parsed.text).toBe(fill(plain, { v }));
      expect(parsed.html).toBe(fill(html, { v }));
    }
  });

  it("marks a copy SMTP-ready only when nodemailer would leave it as it is, whatever the reader's name", async () => {
    const mime = new IssueMime(headers, { html: parseTemplate('<p>{{v}}</p>', true), text: parseTemplate('{{v}}', false) });
    for (const name of ['.dot', 'a\rb', 'a\nb', 'x\r\n.y', `${'n'.repeat(80)} .z`, 'Zoë', null]) {
      const raw = mime.build(copy({ v: 'x' }, { address: 'zed@example.com', name }));
      await expectSafeUnscanned(raw);
    }
  });

  it('leaves a value that spells the boundary harmless', async () => {
    const t: Template = parseTemplate('<p>{{v}}</p>', true);
    const mime = new IssueMime(headers, { html: t, text: parseTemplate('{{v}}', false) });
    const boundary = boundaryOf(mime.build(copy({ v: 'x' })))!;
    const evil = `\n--${boundary}\nContent-Type: text/html\n\n<script>x</script>\n--${boundary}--\n`;
    const raw = mime.build(copy({ v: evil }));
    expectWellFormed(raw);
    const parsed = await simpleParser(raw);
    expect(parsed.text).toBe(evil);
    expect(parsed.html).toBe(fill(t, { v: evil }));
    expect(parsed.attachments).toEqual([]);
  });

  it('keeps values with "=", non-ASCII and long URLs exact, wherever they fall on a line', async () => {
    const t = parseTemplate(`${'x'.repeat(70)}{{a}}\n{{b}}${'y'.repeat(74)}{{c}}\n=={{a}}==\n`, false);
    const mime = new IssueMime(headers, { html: parseTemplate('{{a}}{{b}}{{c}}', true), text: t });
    for (const [a, b, c] of [
      ['=', '==', '=3D'],
      ['é', '日本語', '📬'],
      [LONG_URL, `${LONG_URL}#frag=1`, ' trailing space '],
      ['line\nbreak', '\n', 'tab\tend\t'],
    ] as const) {
      const vars = { a, b, c };
      const raw = mime.build(copy(vars));
      expectWellFormed(raw);
      const parsed = await simpleParser(raw);
      expect(parsed.text).toBe(fill(t, vars));
    }
  });

  it('fills values fixed for the whole issue exactly as if each copy had given them', async () => {
    const html = parseTemplate('<p>{{a}} & {{b}}</p><p>{{a}}</p>', true);
    const text = parseTemplate(`${'x'.repeat(70)}{{a}} {{b}}\n`, false);
    const a = `Zürich & <Co> ${LONG_URL}`;
    const perCopy = new IssueMime(headers, { html, text }).build(copy({ a, b: 'reader' }));
    const fixed = new IssueMime(headers, { html, text }, { a }).build(copy({ b: 'reader' }));
    const body = (raw: Buffer) =>
      raw
        .toString('latin1')
        .replaceAll(boundaryOf(raw)!, 'BOUNDARY')
        .replace(/^Date: .*$/m, '');
    expect(body(fixed)).toBe(body(perCopy));
    expect((await simpleParser(fixed)).html).toBe(fill(html, { a, b: 'reader' }));
  });

  it('keeps every quoted-printable line within 76 characters (RFC 2045)', () => {
    const t = parseTemplate(`${'x'.repeat(76)}{{v}}\n`, false);
    const raw = new IssueMime(headers, { html: parseTemplate('{{v}}', true), text: t }).build(copy({ v: 'value' }));
    expect(linesOf(raw).body.filter((l) => l.length > 76)).toEqual([]);
  });
});

describe('IssueMime headers', () => {
  const body = { html: parseTemplate('<p>{{v}}</p>', true), text: parseTemplate('{{v}}', false) };

  it.each([
    ['quotes and a comma', 'Ada "The Countess" Lovelace, Jr.'],
    ['angle brackets and an address', 'Ada <admin@evil.example>'],
    ['non-ASCII with quotes', 'Zoë "Zed" O\'Brien'],
    ['non-ASCII with angle brackets and a comma', 'Łukasz <Żółć>, 日本'],
    ['a backslash', 'Back\\slash "Name"'],
    ['a semicolon and a colon', 'Group: a; b'],
    ['a long non-ASCII name', 'Ñandú '.repeat(16).trim()],
    ['plain', 'Plain Name'],
  ])('encodes a reader name with %s so that it decodes exactly, as one mailbox', async (_what, name) => {
    const raw = new IssueMime(headers, body).build(copy({ v: 'x' }, { address: 'reader@example.com', name }));
    expectWellFormed(raw);
    // The To field is folded into short lines.
    expect(fieldLines(raw, 'to').length).toBeGreaterThan(0);
    expect(fieldLines(raw, 'to').filter((l) => l.length > 78)).toEqual([]);
    const parsed = await simpleParser(raw);
    expect(toOf(parsed)).toEqual([{ address: 'reader@example.com', name }]);
    expect(parsed.headers.has('bcc')).toBe(false);
    expect(parsed.headers.has('cc')).toBe(false);
  });

  it('puts the bare address in To when the reader has no name', async () => {
    const parsed = await simpleParser(new IssueMime(headers, body).build(copy({ v: 'x' }, { address: 'reader@example.com', name: null })));
    expect(toOf(parsed)).toEqual([{ address: 'reader@example.com', name: '' }]);
  });

  it.each([SUBJECT, 'Plain ASCII subject', `A long subject — ${'with many words and café '.repeat(8).trim()}`, '100% = "all" & <nothing> less'])(
    'encodes the subject so that it decodes exactly: %s',
    async (subject) => {
      const raw = new IssueMime({ ...headers, subject }, body).build(copy({ v: 'x' }));
      expectWellFormed(raw);
      expect(fieldLines(raw, 'subject').length).toBeGreaterThan(0);
      expect(fieldLines(raw, 'subject').filter((l) => l.length > 78)).toEqual([]);
      expect((await simpleParser(raw)).subject).toBe(subject);
    },
  );

  it('encodes a subject holding an encoded-word look-alike so that it decodes exactly', async () => {
    const subject = `Tom & Jerry's "best" | <50 ms 📬 — café Zürich =?utf-8?q?x?= [final]`;
    const raw = new IssueMime({ ...headers, subject }, body).build(copy({ v: 'x' }));
    expect((await simpleParser(raw)).subject).toBe(subject);
  });
});
