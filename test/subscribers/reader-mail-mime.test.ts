import { describe, expect, it } from '@jest/globals';
import { simpleParser } from 'mailparser';
import { isMarkedSmtpReady, isSmtpReady } from '../../src/delivery/dot-stuffing.js';
import { listUnsubscribeHeaders } from '../../src/delivery/list-unsubscribe.js';
import { loadReaderMailTemplates, readerMailKinds, renderReaderMail } from '../../src/rendering/reader-mail.js';
import { ReaderMailMime } from '../../src/subscribers/reader-mail-mime.js';

const fixed = {
  newsletter: 'The Relay',
  postal_address: '1 Example Street',
  expires_hours: '48',
  expires_minutes: '60',
  archive_url: 'https://news.example.org/issues',
};
const vars = {
  greeting: 'Hi Zoë & <Bob>,',
  confirm_url: `https://news.example.org/confirm/${'c'.repeat(180)}`,
  unsubscribe_url: 'https://news.example.org/unsubscribe/u.1',
  manage_url: 'https://news.example.org/manage/m.1',
  data_url: 'https://news.example.org/data/d.1',
};

describe('reader mail as raw MIME, prepared once per process', () => {
  it('says, for every kind, exactly what the templates rendered for the reader say', async () => {
    const templates = await loadReaderMailTemplates();
    const mime = new ReaderMailMime(templates, { mailFrom: 'The Relay <news@example.org>' }, fixed);
    for (const kind of readerMailKinds) {
      const expected = renderReaderMail(templates, kind, { ...fixed, ...vars });
      const mail = mime.build(kind, { to: 'zoe@example.net', vars });
      const parsed = await simpleParser(mail.raw);
      expect([parsed.subject, parsed.text, parsed.html]).toEqual([expected.subject, expected.text, expected.html]);
      expect(parsed.from?.value).toEqual([{ name: 'The Relay', address: 'news@example.org' }]);
      expect(parsed.to).toMatchObject({ value: [{ address: 'zoe@example.net' }] });
      expect(parsed.messageId).toBe(`<${mail.messageIdHeader}>`);
      expect(mail.messageIdHeader).toMatch(/@example\.org$/);
      expect(mail.envelope).toEqual({ from: 'news@example.org', to: 'zoe@example.net' });
      // SMTP-ready: CRLF only, 7-bit, quoted-printable lines of at most 76 characters.
      const text = mail.raw.toString('latin1');
      expect(text).not.toMatch(/[^\r]\n/);
      expect(text).toMatch(/^[\x00-\x7f]*$/);
      const body = text.slice(text.indexOf('\r\n\r\n'));
      expect(body.split('\r\n').filter((l) => l.length > 76)).toEqual([]);
    }
  });

  it('carries the extra headers (the welcome mail is list mail) and the domain in ASCII in RCPT TO and To', async () => {
    const mime = new ReaderMailMime(await loadReaderMailTemplates(), { mailFrom: 'news@exämple.org' }, fixed);
    const mail = mime.build('welcome', { to: 'jane@bücher.de', vars, headers: listUnsubscribeHeaders(vars.unsubscribe_url) });
    const parsed = await simpleParser(mail.raw);
    const lines = parsed.headerLines.map((h) => h.line);
    expect(lines).toEqual(expect.arrayContaining([`List-Unsubscribe: <${vars.unsubscribe_url}>`, 'List-Unsubscribe-Post: List-Unsubscribe=One-Click']));
    expect(mail.envelope).toEqual({ from: 'news@xn--exmple-cua.org', to: 'jane@xn--bcher-kva.de' });
    expect(lines).toContain('To: jane@xn--bcher-kva.de');
  });

  it('marks every kind SMTP-ready (passed to the relay without a dot-stuffing scan), and each is', async () => {
    const mime = new ReaderMailMime(await loadReaderMailTemplates(), { mailFrom: 'The Relay <news@example.org>' }, fixed);
    // A value starting with a dot, and one with line breaks: quoted-printable keeps both ready.
    const odd = { ...vars, greeting: '.Hi\r\n.there\nand\rmore,' };
    for (const kind of readerMailKinds) {
      for (const v of [vars, odd]) {
        const mail = mime.build(kind, { to: 'zoe@example.net', vars: v, headers: listUnsubscribeHeaders(vars.unsubscribe_url) });
        expect([kind, isMarkedSmtpReady(mail.raw)]).toEqual([kind, true]);
        expect(isSmtpReady(mail.raw)).toBe(true);
      }
    }
  });
});
