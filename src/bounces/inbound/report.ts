import { simpleParser, type Attachment, type ParsedMail } from 'mailparser';
import { tokenShaped, verpToken } from '../../sending/message-tokens.js';
import { bareAddress, decodeText, field, parseFields, parseGroups, untyped, type Field } from './header-fields.js';
import { replyCodeStatus, statusCode } from '../status-code.js';

export { statusCode };

/**
 * Reads an inbound report — a delivery status notification (bounce, RFC 3464 / 6522, or a
 * plain-text one such as qmail's) or an abuse feedback report (ARF, RFC 5965) — into plain data.
 * Pure: no database, no network, no secret. The message token it finds is only *shaped* like ours;
 * the caller must still check it with `MessageTokens.verify` before believing it.
 */

/** How one recipient fared, from a per-recipient block of a DSN (or a plain-text bounce). */
export type ReportRecipient = {
  /** Final-Recipient, else Original-Recipient, without the `rfc822;` type. */
  address: string | null;
  /** Action, lower case: failed, delayed, delivered, relayed, expanded (RFC 3464 §2.3.3). */
  action: string | null;
  /**
   * RFC 3463 status (e.g. '5.1.1'): the Status field, else an enhanced code in the Diagnostic-Code,
   * else `<digit>.0.0` from a bare SMTP reply code there (`550` → '5.0.0', "other undefined status").
   */
  status: string | null;
  /** Diagnostic-Code without its `smtp;` type, unfolded (at most 1000 characters). */
  diagnostic: string | null;
  /** Remote-MTA without its `dns;` type. */
  remoteMta: string | null;
  /**
   * hard: failed (or no action given) with a 5.x.x status; soft: failed with a 4.x.x status (the
   * remote server gave up on a temporary error); other: a delay warning (action delayed: the
   * server is still trying, so it is no bounce yet), delivered/relayed/expanded, or no status at
   * all (not enough to call it either way).
   */
  class: 'hard' | 'soft' | 'other';
};

export type OriginalMessage = {
  /** Shaped like a Broadside token (`m<id36>-<16hex>`), lower case, NOT verified. */
  messageToken: string | null;
  /** As written in the header, angle brackets included. */
  messageIdHeader: string | null;
  /** The bare address of the original To (for ARF, else Original-Rcpt-To). */
  to: string | null;
  /** The bare address of the original Return-Path. */
  returnPath: string | null;
};

export type InboundReport = {
  kind: 'dsn' | 'arf' | 'unknown';
  /** Delivery outcomes; empty for ARF (a complaint is not a delivery outcome). */
  recipients: ReportRecipient[];
  /** ARF Feedback-Type, lower case (abuse, fraud, virus, not-spam, other, ...). */
  feedbackType: string | null;
  /** From the returned message or headers (message/rfc822, text/rfc822-headers, or in the body text). */
  original: OriginalMessage;
  /**
   * Added to the brief's shape: a token found in the address the report itself was sent to
   * (`bounces+<token>@…` in Delivered-To, X-Original-To or To), the VERP route, which works even
   * when the remote server returned nothing of the original. Also unverified.
   */
  envelopeToken: string | null;
  /**
   * Original-Envelope-Id of the DSN when shaped like our token: we submit with ENVID=<token>
   * (RFC 3461), and the report repeats it. Also unverified.
   */
  envelopeId: string | null;
  /**
   * Where in the returned original `original.messageToken` could come from, each on its own
   * (they usually hold the same token): X-Broadside-Message, the Message-ID's local part, the
   * Return-Path's VERP address. Unset when no original came back. Also unverified.
   */
  originalTokens?: { header: string | null; messageIdHeader: string | null; returnPath: string | null };
  /** Reporting-MTA (without `dns;`), else the report's From address. */
  reporter: string | null;
  subject: string | null;
};

const DELIVERY_TYPES = new Set(['message/delivery-status', 'message/global-delivery-status']);
const FEEDBACK_TYPES = new Set(['message/feedback-report']);
const ORIGINAL_TYPES = new Set(['message/rfc822', 'message/global', 'text/rfc822-headers', 'message/global-headers']);

/** How much of any one part is read for text. */
const MAX_SCAN = 1024 * 1024;
/** How much of the raw message is read, for the top headers and when MIME parsing fails. */
const MAX_RAW_SCAN = 4 * 1024 * 1024;
const MAX_DIAGNOSTIC = 1000;
const MAX_RECIPIENTS = 100;

/** A report of which nothing could be read. */
function emptyReport(): InboundReport {
  return {
    kind: 'unknown',
    recipients: [],
    feedbackType: null,
    original: { messageToken: null, messageIdHeader: null, to: null, returnPath: null },
    envelopeToken: null,
    envelopeId: null,
    reporter: null,
    subject: null,
  };
}

/** Never rejects: whatever cannot be understood yields kind 'unknown' with what was found. */
export async function parseReport(raw: Buffer): Promise<InboundReport> {
  const report = emptyReport();
  try {
    await fill(report, Buffer.isBuffer(raw) ? raw : Buffer.alloc(0));
  } catch {
    // Malformed input: keep whatever was filled in before the failure.
  }
  return report;
}

async function fill(report: InboundReport, raw: Buffer): Promise<void> {
  const rawText = decodeText(raw.subarray(0, MAX_RAW_SCAN)).replace(/\r\n?/g, '\n');
  const headerEnd = rawText.indexOf('\n\n');
  const topFields = parseFields(headerEnd < 0 ? rawText : rawText.slice(0, headerEnd));
  report.subject = field(topFields, 'subject');
  report.reporter = bareAddress(field(topFields, 'from'));
  report.envelopeToken = envelopeToken(topFields);

  let mail: ParsedMail | null = null;
  try {
    mail = await simpleParser(raw, {
      // Without this a delivery-status part is merged into `text` rather than kept as a part.
      keepDeliveryStatus: true,
      // Without this an inline message/rfc822 is parsed into `text` and its Message-ID lost.
      ignoreEmbedded: true,
      skipTextToHtml: true,
      skipImageLinks: true,
      checksumAlgo: false,
    });
  } catch {
    // mailparser rejects e.g. a header block over 1 MB; fall back to scanning the raw text.
  }
  if (mail?.subject) report.subject = mail.subject.slice(0, 1000);
  const fromAddress = mail?.from?.value[0]?.address;
  if (fromAddress) report.reporter = fromAddress;

  const attachments = mail?.attachments ?? [];
  const delivery = attachments.find((a) => DELIVERY_TYPES.has(a.contentType));
  const feedback = attachments.find((a) => FEEDBACK_TYPES.has(a.contentType));
  let original = attachments.find((a) => ORIGINAL_TYPES.has(a.contentType));
  const rawBody = headerEnd < 0 ? '' : rawText.slice(headerEnd + 2);
  // A broken boundary makes mailparser drop the body without complaint: read the raw body instead.
  const bodyText = !mail || (!delivery && !feedback && !mail.text) ? rawBody : (mail.text ?? '').slice(0, MAX_SCAN).replace(/\r\n?/g, '\n');

  if (feedback) {
    const fields = parseFields(partText(feedback));
    readFeedback(report, fields);
    // RFC 5965: the third part is the original message or its headers, whatever its type says.
    original ??= attachments.find((a) => a !== feedback && a !== delivery);
  } else if (!delivery) {
    const embedded = /^Feedback-Type[ \t]*:/im.exec(bodyText);
    if (embedded) readFeedback(report, parseGroups(bodyText.slice(embedded.index), 1)[0] ?? []);
  }

  if (delivery) {
    readDeliveryStatus(report, parseGroups(partText(delivery)));
  } else if (!report.feedbackType) {
    // Delivery-status fields written into the body (a broken multipart, or an old MTA).
    const start = /^(?:Reporting-MTA|Final-Recipient|Original-Recipient)[ \t]*:/im.exec(bodyText);
    if (start) readDeliveryStatus(report, parseGroups(bodyText.slice(start.index)));
    if (report.recipients.length === 0) readPlainTextBounce(report, bodyText);
  }

  const originalFields = original ? parseFields(partText(original)) : embeddedHeaders(bodyText);
  if (originalFields) readOriginal(report, originalFields);

  if (report.feedbackType) report.kind = 'arf';
  else if (report.recipients.some((r) => r.status !== null || r.action !== null)) report.kind = 'dsn';
}

function partText(part: Attachment): string {
  return decodeText(part.content.subarray(0, MAX_SCAN)).replace(/\r\n?/g, '\n');
}

function readFeedback(report: InboundReport, fields: Field[]): void {
  const type = field(fields, 'feedback-type');
  if (type) report.feedbackType = type.toLowerCase().split(/[\s;(]/)[0] || null;
  const mta = untyped(field(fields, 'reporting-mta'));
  if (mta) report.reporter = mta;
  report.original.to ??= bareAddress(untyped(field(fields, 'original-rcpt-to')));
}

function readDeliveryStatus(report: InboundReport, groups: Field[][]): void {
  let reportingMta: string | null = null;
  for (const group of groups) {
    reportingMta ??= untyped(field(group, 'reporting-mta'));
    report.envelopeId ??= tokenShaped(field(group, 'original-envelope-id'));
    const address = untyped(field(group, 'final-recipient')) ?? untyped(field(group, 'original-recipient'));
    if (!address) continue;
    if (report.recipients.length >= MAX_RECIPIENTS) break;
    const action =
      field(group, 'action')
        ?.toLowerCase()
        .split(/[\s;(]/)[0] || null;
    const diagnostic = untyped(field(group, 'diagnostic-code'))?.slice(0, MAX_DIAGNOSTIC) ?? null;
    const status = statusCode(field(group, 'status')) ?? statusCode(diagnostic) ?? replyCodeStatus(diagnostic);
    report.recipients.push({
      address: bareAddress(address) ?? address,
      action,
      status,
      diagnostic,
      remoteMta: hostName(untyped(field(group, 'remote-mta'))),
      class: classifyRecipient(action, status),
    });
  }
  if (reportingMta) report.reporter = reportingMta;
}

/**
 * qmail's bounce: a paragraph per recipient, opened by a line `<address>:`. A recipient is kept
 * only with a status code in its paragraph; anything vaguer is not a confident outcome.
 */
function readPlainTextBounce(report: InboundReport, text: string): void {
  const copyAt = text.search(/^--- Below this line is a copy of the message/m);
  const intro = copyAt < 0 ? text.slice(0, 64 * 1024) : text.slice(0, copyAt);
  const opener = /^<([^<>\s]+@[^<>\s]+)>:[ \t]*$/gm;
  for (let m = opener.exec(intro); m; m = opener.exec(intro)) {
    if (report.recipients.length >= MAX_RECIPIENTS) break;
    const rest = intro.slice(m.index + m[0].length).replace(/^\n/, '');
    const blank = rest.search(/\n[ \t]*\n/);
    const paragraph = (blank < 0 ? rest : rest.slice(0, blank)).trim();
    const status = statusCode(paragraph) ?? replyCodeStatus(paragraph);
    if (!status) continue;
    report.recipients.push({
      address: m[1]!,
      action: null,
      status,
      diagnostic: paragraph.replace(/\s*\n\s*/g, ' ').slice(0, MAX_DIAGNOSTIC),
      remoteMta: /Giving up on ([\w.:-]+?)\.?$/m.exec(paragraph)?.[1] ?? null,
      class: classifyRecipient(null, status),
    });
  }
}

/** The header block around the first Message-ID or X-Broadside-Message line in a body. */
function embeddedHeaders(text: string): Field[] | null {
  const at = /^(?:Message-ID|X-Broadside-Message)[ \t]*:/im.exec(text);
  if (!at) return null;
  const start = text.lastIndexOf('\n\n', at.index);
  return parseFields(text.slice(start < 0 ? 0 : start + 2));
}

function readOriginal(report: InboundReport, fields: Field[]): void {
  const o = report.original;
  const messageId = field(fields, 'message-id');
  const returnPath = bareAddress(field(fields, 'return-path'));
  o.messageIdHeader = messageId ? (/<[^<>]*>/.exec(messageId)?.[0] ?? messageId) : null;
  o.to = bareAddress(field(fields, 'to')) ?? o.to;
  o.returnPath = returnPath;
  const tokens = {
    header: tokenShaped(field(fields, 'x-broadside-message')),
    messageIdHeader: tokenShaped(/^<?\s*([^@<>\s]+)@/.exec(messageId ?? '')?.[1] ?? null),
    returnPath: verpToken(returnPath),
  };
  report.originalTokens = tokens;
  o.messageToken = tokens.header ?? tokens.messageIdHeader ?? tokens.returnPath;
}

/** `mx.example.org. (198.51.100.30, the server for …)` → `mx.example.org`: comments and the root dot go. */
function hostName(value: string | null): string | null {
  const host = value?.split(/[\s(]/)[0]?.replace(/\.$/, '');
  return host ? host : null;
}

function envelopeToken(fields: Field[]): string | null {
  for (const name of ['delivered-to', 'x-original-to', 'to']) {
    for (const f of fields) {
      if (f.name !== name) continue;
      const token = verpToken(f.value);
      if (token) return token;
    }
  }
  return null;
}

export function classifyRecipient(action: string | null, status: string | null): ReportRecipient['class'] {
  if (action === 'delayed' || action === 'delivered' || action === 'relayed' || action === 'expanded') return 'other';
  // failed, a missing action (plain-text bounces) or a non-standard word ("failure"): the status decides.
  if (status?.startsWith('5')) return 'hard';
  if (status?.startsWith('4')) return 'soft';
  return 'other';
}
