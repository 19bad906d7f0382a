import { createHash } from 'node:crypto';
import type { Container } from '../../container.js';
import { verpToken } from '../../sending/message-tokens.js';
import { recordBounce } from '../record.js';
import { matchToken, type BounceInput, type Match, type MatchKind } from '../queries.js';
import { findInboundReportId, storeInboundReport } from './queries.js';
import { parseReport, type InboundReport } from './report.js';

/**
 * What the bounce listener does with one accepted mail: keeps it (inbound_reports), reads it
 * (parseReport), finds the message it is about by a signed token, and records one bounce row per
 * outcome with the suppression policy applied (recordBounce).
 *
 * Invariants:
 * - The raw mail is stored before anything is recorded, and every bounce row links to it
 *   (report_id): nothing the listener answered 250 for is ever dropped, even when it could not
 *   be read or matched nothing.
 * - A reader is found only through a token whose signature verifies, never by an address in
 *   the report: anyone can send mail to the listener.
 * - Idempotent: each row's event id is derived from the mail's bytes (its SHA-256 and the
 *   outcome's position), so the same bytes delivered again record nothing new. When they were
 *   stored before, the recording is run again anyway: if the first delivery died between
 *   storing and recording (Postgres went away, we answered 451), the sender's retry completes it.
 */

export type InboundMail = {
  raw: Buffer;
  /** The envelope sender; null for the null sender `<>` (as every bounce has). */
  mailFrom: string | null;
  /** The first accepted envelope recipient: `bounces@…` or `bounces+<token>@…`. */
  rcptTo: string;
};

export type InboundResult = {
  /** The inbound_reports row the mail is kept in. */
  reportId: number | null;
  /** The same bytes had been received before: nothing new was recorded. */
  duplicate: boolean;
  /** Bounce rows written now. */
  recorded: number;
  /** Readers this mail suppressed (bounced or complained). */
  suppressed: number;
};

const UNREADABLE = 'the report could not be read (no delivery status or feedback report found); the raw mail is kept as inbound report';

/**
 * Throws when Postgres fails (the listener answers 451 and the sender retries); never on what
 * the mail contains.
 */
export async function handleInboundReport(
  c: Pick<Container, 'pool' | 'config' | 'metrics' | 'messageTokens' | 'log'>,
  mail: InboundMail,
): Promise<InboundResult> {
  const sha256 = createHash('sha256').update(mail.raw).digest();
  // Never rejects: a mail nothing can be read from is still stored, as unknown.
  const report = await parseReport(mail.raw);
  const stored = await storeInboundReport(c.pool, { mailFrom: mail.mailFrom, rcptTo: mail.rcptTo, kind: report.kind, raw: mail.raw, sha256 });
  const duplicate = stored === undefined;
  const reportId = stored ?? (await findInboundReportId(c.pool, sha256));

  const match = await matchToken(c.pool, c.messageTokens, candidates(mail, report));
  const key = sha256.toString('hex');
  let recorded = 0;
  let suppressed = 0;
  for (const row of bounceRows(report, match, reportId, key)) {
    const r = await recordBounce(c, row);
    if (!r) continue;
    recorded++;
    if (r.suppressed) {
      suppressed++;
      c.log.info({ reportId, subscriberId: match?.subscriberId, status: r.subscriberStatus, type: row.type }, 'bounce listener: reader suppressed');
    }
  }
  c.log.info(
    { reportId, kind: report.kind, duplicate, recorded, matched: match ? recorded : 0, matchedBy: match?.matchedBy ?? null, suppressed },
    'bounce listener: report received',
  );
  return { reportId, duplicate, recorded, suppressed };
}

/**
 * Where the report may name our message, most trusted first. The first token that verifies
 * and names an existing message decides.
 * - verp: the envelope recipient the report was delivered to, then the same address as the
 *   report's headers name it (Delivered-To, X-Original-To, To); then the returned original's
 *   Return-Path, which is that same VERP address;
 * - envelope_id: the DSN's Original-Envelope-Id (we submit with ENVID=<token>);
 * - header: X-Broadside-Message in the returned original;
 * - message_id: the local part of the returned original's Message-ID.
 */
function candidates(mail: InboundMail, report: InboundReport): { token: string | null; matchedBy: MatchKind }[] {
  const returned = report.originalTokens;
  return [
    { token: verpToken(mail.rcptTo), matchedBy: 'verp' },
    { token: report.envelopeToken, matchedBy: 'verp' },
    { token: report.envelopeId, matchedBy: 'envelope_id' },
    { token: returned?.header ?? null, matchedBy: 'header' },
    { token: returned?.messageIdHeader ?? null, matchedBy: 'message_id' },
    { token: returned?.returnPath ?? null, matchedBy: 'verp' },
  ];
}

/**
 * The rows one report makes:
 * - a DSN: one per recipient, typed by its class (hard, soft, other: delay warnings and
 *   successes are kept, not counted);
 * - an ARF report: one; a complaint only for Feedback-Type `abuse` (RFC 5965 makes the field
 *   mandatory; a feedback report without it is not read as ARF at all, so it lands in the
 *   unreadable case below: a complaint suppresses a reader for good, so it needs the explicit
 *   word). Other types (not-spam, fraud, virus, ...) are kept as other, with their type;
 * - anything else, or a DSN without a recipient: one row of type other saying it could not be
 *   read, matched when a token still named the message, so the editor sees it.
 */
function bounceRows(report: InboundReport, match: Match | null, reportId: number | null, key: string): BounceInput[] {
  const base = { match, reportId };
  if (report.kind === 'dsn' && report.recipients.length > 0) {
    return report.recipients.map((r, i) => ({
      ...base,
      type: r.class,
      source: 'dsn',
      recipient: r.address,
      action: r.action,
      status: r.status,
      diagnostic: r.diagnostic,
      remoteMta: r.remoteMta,
      eventId: `${key}:${i}`,
    }));
  }
  if (report.kind === 'arf') {
    return [
      {
        ...base,
        type: report.feedbackType === 'abuse' ? 'complaint' : 'other',
        source: 'arf',
        recipient: report.original.to,
        feedbackType: report.feedbackType,
        eventId: `${key}:arf`,
      },
    ];
  }
  return [
    {
      ...base,
      type: 'other',
      source: 'dsn',
      recipient: report.original.to,
      diagnostic: UNREADABLE,
      eventId: `${key}:unread`,
    },
  ];
}
