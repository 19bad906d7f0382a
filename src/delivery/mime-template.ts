import { randomBytes } from 'node:crypto';
import { encodeWord, encodeWords, foldLines, isPlainText, quoteString } from 'nodemailer/lib/mime-funcs';
import { encode as qpEncode, wrap as qpWrap } from 'nodemailer/lib/qp';
import { escapeHtml } from '../web/escape.js';
import type { Template } from '../rendering/template.js';
import type { CopyBuffers } from './copy-buffers.js';
import { isSmtpReady, markSmtpReady } from './dot-stuffing.js';
import { listUnsubscribeHeaders } from './list-unsubscribe.js';

/**
 * An issue's whole MIME message, built once per issue and process, with the reader's values
 * left open. Building one reader's copy is then a concatenation of pre-encoded buffers and a few
 * short encoded values: no MIME generation, no MJML, no Markdown per reader.
 *
 * Both parts are quoted-printable and every header is ASCII, so the message is 7-bit clean and
 * needs no 8BITMIME from the relay (unless the reader's address itself needs SMTPUTF8). Quoted-printable can be cut and joined at soft line breaks (`=` CRLF): every literal
 * part and every value is encoded on its own and ends with one, so no line passes 76 characters
 * and the decoded text is exactly the template filled in.
 */
export type IssueMimeHeaders = {
  from: string;
  subject: string;
  /** `List-Id` value, e.g. `The Relay <the-relay.news.example.org>`. */
  listId: string;
  /** `Feedback-ID` value (Gmail's feedback loop), identifying issue and send. */
  feedbackId: string;
  /** A test copy: `X-Broadside-Test: yes` among the headers (and no message token per copy). */
  test?: boolean;
};

export type ReaderCopy = {
  /**
   * The reader's address in its wire form (transportAddress: ASCII, the domain as A-labels) and
   * optional display name. Only an address that needs SMTPUTF8 is not ASCII, and then the header
   * carries it in UTF-8 (RFC 6532), for a relay that offers SMTPUTF8.
   */
  to: { address: string; name: string | null };
  messageIdHeader: string;
  /** Our token for the message (`X-Broadside-Message`); null for a test copy, which has no message. */
  messageToken: string | null;
  unsubscribeUrl: string;
  vars: Record<string, string>;
  date?: Date;
};

const CRLF = '\r\n';
const crlf = (s: string) => s.replace(/\r\n|\r|\n/g, CRLF);
// 73, not 76: every piece gets a soft break ("=") appended to its last line, and a dot that
// starts a line is written "=2E" (two more characters), so the message needs no dot-stuffing on
// the wire (see dot-stuffing.ts) and decodes to the same text.
const qp = (s: string) => qpWrap(qpEncode(crlf(s)), 73).replace(/(^|\n)\./g, '$1=2E');

/** `filled[i]`: slot i's value, encoded once, when it is the same for every reader. */
export type EncodedTemplate = { parts: Buffer[]; slots: string[]; escape: boolean; filled: (Buffer | undefined)[]; smtpReady: boolean };

const EMPTY = Buffer.alloc(0);
/** A piece of quoted-printable that may be joined to any other: it ends with a soft break. */
const joinable = (s: string) => (s === '' ? EMPTY : Buffer.from(`${qp(s)}=${CRLF}`, 'latin1'));

/** A slot's value as a copy carries it: escaped for HTML in the HTML part, quoted-printable, joinable. */
export const encodeSlotValue = (value: string, html: boolean): Buffer => joinable(html ? escapeHtml(value) : value);
const encodeValue = encodeSlotValue;

/** A part's template as quoted-printable pieces that join at soft line breaks, `fixed` values encoded in. */
export function encodeTemplate(t: Template, fixed: Record<string, string>): EncodedTemplate {
  const filled = t.slots.map((slot) => (Object.hasOwn(fixed, slot) ? encodeValue(fixed[slot]!, t.escape) : undefined));
  const parts = t.parts.map(joinable);
  return { parts, slots: t.slots, escape: t.escape, filled, smtpReady: [...parts, ...filled].every((b) => !b || isSmtpReady(b)) };
}

/** A header field, folded, with its CRLF. */
export function header(name: string, value: string): string {
  return foldLines(`${name}: ${value}`, 76) + CRLF;
}

/**
 * Unstructured header text (Subject, a List-Id phrase), RFC 2047-encoded where needed. Text that
 * merely looks like an encoded word ("=?…?=") is encoded too, or a reader would see it decoded.
 */
export function encodeHeaderText(text: string): string {
  return /=\?/.test(text) ? encodeWord(text, 'Q', 52) : encodeWords(text, 'Q', 52, true);
}

/** `Name <address>` with the name quoted or encoded as RFC 2047 needs. */
export function formatAddress(address: string, name: string | null): string {
  if (!name) return address;
  if (!isPlainText(name)) return `${encodeWord(name, 'Q', 52)} <${address}>`;
  return /^[\w ]+$/.test(name) ? `${name} <${address}>` : `${quoteString(name)} <${address}>`;
}

export class IssueMime {
  private readonly fixedHead: Buffer;
  private readonly textStart: Buffer;
  private readonly htmlStart: Buffer;
  private readonly end: Buffer;
  private readonly text: EncodedTemplate;
  private readonly html: EncodedTemplate;
  /** Every piece of the issue's own is SMTP-ready (isSmtpReady): a copy is, when its reader's pieces are too. */
  private readonly smtpReady: boolean;

  /**
   * `fixed`: values that are the same for every reader of the issue (the newsletter's name, the
   * date, the postal address), encoded here once instead of for every copy.
   */
  constructor(
    headers: IssueMimeHeaders,
    templates: { html: Template; text: Template },
    fixed: Record<string, string> = {},
    opts: { boundaryId?: string } = {},
  ) {
    // "=_" never occurs in quoted-printable output ("=" is always "=3D" there), so the boundary
    // cannot collide with the content. `boundaryId` (hex) makes it the same for every preparation
    // of one content (a test copy and a reader's copy); random without.
    const boundary = `=_broadside_${opts.boundaryId ?? randomBytes(12).toString('hex')}`;
    this.fixedHead = Buffer.from(
      header('From', headers.from) +
        header('Subject', encodeHeaderText(headers.subject)) +
        header('List-Id', headers.listId) +
        header('Feedback-ID', headers.feedbackId) +
        (headers.test ? `X-Broadside-Test: yes${CRLF}` : '') +
        'MIME-Version: 1.0' +
        CRLF +
        `Content-Type: multipart/alternative; boundary="${boundary}"` +
        CRLF +
        CRLF,
      'latin1',
    );
    const part = (type: string) => `--${boundary}${CRLF}Content-Type: ${type}; charset=utf-8${CRLF}Content-Transfer-Encoding: quoted-printable${CRLF}${CRLF}`;
    this.textStart = Buffer.from(part('text/plain'), 'latin1');
    this.htmlStart = Buffer.from(`${CRLF}${part('text/html')}`, 'latin1');
    this.end = Buffer.from(`${CRLF}--${boundary}--${CRLF}`, 'latin1');
    this.text = encodeTemplate(templates.text, fixed);
    this.html = encodeTemplate(templates.html, fixed);
    this.smtpReady = this.text.smtpReady && this.html.smtpReady && [this.fixedHead, this.textStart, this.htmlStart, this.end].every(isSmtpReady);
  }

  /**
   * One reader's complete message, ready to hand to the SMTP client as `raw`; built in memory
   * from `memory` when given (see CopyBuffers), else in memory of its own.
   */
  build(copy: ReaderCopy, memory?: CopyBuffers): Buffer {
    // Not folded: a long link stays whole on its line (RFC 5322 allows 998 characters).
    const unsubscribe = Object.entries(listUnsubscribeHeaders(copy.unsubscribeUrl))
      .map(([name, value]) => `${name}: ${value}${CRLF}`)
      .join('');
    const head = Buffer.from(
      header('To', formatAddress(copy.to.address, copy.to.name)) +
        header('Date', (copy.date ?? new Date()).toUTCString().replace(/GMT$/, '+0000')) +
        `Message-ID: <${copy.messageIdHeader}>${CRLF}` +
        unsubscribe +
        (copy.messageToken === null ? '' : `X-Broadside-Message: ${copy.messageToken}${CRLF}`),
      // The same bytes as ASCII whenever the address is ASCII; UTF-8 for an SMTPUTF8 address.
      'utf8',
    );
    const chunks: Buffer[] = [head, this.fixedHead, this.textStart];
    // The reader's own pieces (the head, their values) are checked; the issue's were, once.
    let ready = this.smtpReady && isSmtpReady(head);
    ready = fillInto(chunks, this.text, copy.vars) && ready;
    chunks.push(this.htmlStart);
    ready = fillInto(chunks, this.html, copy.vars) && ready;
    chunks.push(this.end);
    const message = memory ? joinInto(memory, chunks) : Buffer.concat(chunks);
    return ready ? markSmtpReady(message) : message;
  }
}

/** The chunks one after the other in a buffer from `memory`. */
function joinInto(memory: CopyBuffers, chunks: readonly Buffer[]): Buffer {
  let size = 0;
  for (const c of chunks) size += c.length;
  const out = memory.take(size);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/** Appends the template's pieces with the reader's values; true when each value is SMTP-ready. */
export function fillInto(chunks: Buffer[], t: EncodedTemplate, vars: Record<string, string>): boolean {
  let ready = true;
  chunks.push(t.parts[0]!);
  for (let i = 0; i < t.slots.length; i++) {
    let value = t.filled[i];
    if (!value) {
      const v = vars[t.slots[i]!];
      if (v === undefined) throw new Error(`template variable "${t.slots[i]}" has no value`);
      value = encodeValue(v, t.escape);
      ready &&= isSmtpReady(value);
    }
    chunks.push(value, t.parts[i + 1]!);
  }
  return ready;
}
