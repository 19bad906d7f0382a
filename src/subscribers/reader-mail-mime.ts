// Reader mail (confirmation, welcome, data link) as raw MIME: each kind's two parts are encoded
// once per process, with the values that are the same for every reader (the newsletter's name,
// the postal address, the link lifetimes) encoded in, so that one mail is a few short encoded
// values joined to prepared buffers and goes to the relay through `mailer.sendRaw`, with none of
// nodemailer's composing per sign-up.
import { randomBytes, randomUUID } from 'node:crypto';
import { parseMailbox } from '../config/mailbox.js';
import { isSmtpReady, markSmtpReady } from '../delivery/dot-stuffing.js';
import { type EncodedTemplate, encodeHeaderText, encodeTemplate, fillInto, formatAddress, header } from '../delivery/mime-template.js';
import type { RawMail } from '../delivery/mailer.js';
import type { ReaderMailTemplateName, ReaderMailTemplates } from '../rendering/reader-mail.js';
import { fill, type Template } from '../rendering/template.js';
import { transportAddress } from './email-address.js';

const CRLF = '\r\n';

const subjectHeader = (t: Template, vars: Record<string, string>) => header('Subject', encodeHeaderText(fill(t, vars)));

/**
 * `subject`: the Subject header, ready when it holds only fixed values. `smtpReady`: every prepared
 * piece can go into SMTP DATA as it is (see isSmtpReady), so a mail is, when its reader's pieces are.
 */
type PreparedKind = {
  subject: Template | string;
  head: Buffer;
  text: EncodedTemplate;
  htmlStart: Buffer;
  html: EncodedTemplate;
  end: Buffer;
  smtpReady: boolean;
};

export type ReaderMailSettings = { mailFrom: string };

/** One reader's mail: the address as stored, every value its templates use, and any extra headers (List-Unsubscribe). */
export type ReaderMailCopy = { to: string; vars: Record<string, string>; headers?: Record<string, string> };

export class ReaderMailMime {
  private readonly kinds = new Map<ReaderMailTemplateName, PreparedKind>();
  /** The values each kind's templates (subject, text, HTML) name. */
  private readonly slotsOf = new Map<ReaderMailTemplateName, ReadonlySet<string>>();
  private readonly sender: string;
  /** The Message-ID domain: the sender's, in its wire form. */
  private readonly domain: string;
  private readonly fixed: Record<string, string>;

  /** `fixed`: values that are the same in every reader's mail (encoded here once). */
  constructor(templates: ReaderMailTemplates, settings: ReaderMailSettings, fixed: Record<string, string>) {
    this.fixed = fixed;
    const from = parseMailbox(settings.mailFrom);
    this.sender = transportAddress(from.address).address;
    this.domain = this.sender.split('@')[1] ?? 'localhost';
    const fromHeader = header('From', formatAddress(this.sender, from.name));
    for (const [kind, t] of Object.entries(templates) as [ReaderMailTemplateName, ReaderMailTemplates[ReaderMailTemplateName]][]) {
      // "=_" never occurs in quoted-printable, so the boundary cannot collide with the content.
      const boundary = `=_broadside_${randomBytes(12).toString('hex')}`;
      const part = (type: string) => `--${boundary}${CRLF}Content-Type: ${type}; charset=utf-8${CRLF}Content-Transfer-Encoding: quoted-printable${CRLF}${CRLF}`;
      const head = Buffer.from(
        `${fromHeader}MIME-Version: 1.0${CRLF}Content-Type: multipart/alternative; boundary="${boundary}"${CRLF}${CRLF}${part('text/plain')}`,
        'latin1',
      );
      const htmlStart = Buffer.from(`${CRLF}${part('text/html')}`, 'latin1');
      const end = Buffer.from(`${CRLF}--${boundary}--${CRLF}`, 'latin1');
      this.slotsOf.set(kind, new Set([...t.subject.slots, ...t.text.slots, ...t.html.slots]));
      const text = encodeTemplate(t.text, fixed);
      const html = encodeTemplate(t.html, fixed);
      this.kinds.set(kind, {
        subject: t.subject.slots.every((slot) => Object.hasOwn(fixed, slot)) ? subjectHeader(t.subject, fixed) : t.subject,
        head,
        text,
        htmlStart,
        html,
        end,
        smtpReady: text.smtpReady && html.smtpReady && [head, htmlStart, end].every(isSmtpReady),
      });
    }
  }

  /** Whether `kind`'s templates use the value `name` (a reader's value not used need not be made). */
  uses(kind: ReaderMailTemplateName, name: string): boolean {
    return this.slotsOf.get(kind)?.has(name) ?? false;
  }

  /** The mail ready for `mailer.sendRaw`: To in its wire form (the domain in ASCII), in RCPT TO and in the header alike. */
  build(kind: ReaderMailTemplateName, copy: ReaderMailCopy, date = new Date()): RawMail & { messageIdHeader: string } {
    const k = this.kinds.get(kind);
    if (!k) throw new Error(`no reader mail template "${kind}"`);
    const to = transportAddress(copy.to);
    const messageIdHeader = `${randomUUID()}@${this.domain}`;
    // Not folded: a long link stays whole on its line (RFC 5322 allows 998 characters).
    const extra = Object.entries(copy.headers ?? {})
      .map(([name, value]) => `${name}: ${value}${CRLF}`)
      .join('');
    const head = Buffer.from(
      header('To', formatAddress(to.address, null)) +
        (typeof k.subject === 'string' ? k.subject : subjectHeader(k.subject, { ...this.fixed, ...copy.vars })) +
        header('Date', date.toUTCString().replace(/GMT$/, '+0000')) +
        `Message-ID: <${messageIdHeader}>${CRLF}` +
        extra,
      // ASCII whenever the address is; UTF-8 for an address that needs SMTPUTF8 (RFC 6532).
      'utf8',
    );
    const chunks: Buffer[] = [head, k.head];
    // The reader's own pieces (the head, their values) are checked; the prepared ones were, once.
    let ready = k.smtpReady && isSmtpReady(head);
    ready = fillInto(chunks, k.text, copy.vars) && ready;
    chunks.push(k.htmlStart);
    ready = fillInto(chunks, k.html, copy.vars) && ready;
    chunks.push(k.end);
    const raw = Buffer.concat(chunks);
    return { envelope: { from: this.sender, to: to.address }, raw: ready ? markSmtpReady(raw) : raw, messageIdHeader };
  }
}
