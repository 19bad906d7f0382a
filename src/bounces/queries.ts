// SQL for recording bounces and complaints and applying the suppression policy.
import type { Pool } from '../db/pool.js';
import type { MessageTokens } from '../sending/message-tokens.js';
import type { BounceSource, BounceType } from '../shared/statuses.js';

export const matchKinds = ['verp', 'envelope_id', 'header', 'message_id', 'token', 'address', 'submission'] as const;
export type MatchKind = (typeof matchKinds)[number];

/** Which message (and so which reader) a bounce is about, and how we know. */
export type Match = { messageId: number | null; subscriberId: number; sendId: number | null; matchedBy: MatchKind };

export type BounceInput = {
  type: BounceType;
  source: BounceSource;
  /** Null: matched nothing; the row is kept for the editor to see. */
  match: Match | null;
  recipient?: string | null;
  action?: string | null;
  status?: string | null;
  diagnostic?: string | null;
  remoteMta?: string | null;
  feedbackType?: string | null;
  /** Once-only key within the source: a second row with the same one is not recorded. */
  eventId?: string | null;
  reportId?: number | null;
  occurredAt?: Date | null;
  /**
   * source 'smtp' only: the relay's reply, stored on the message, whose final status this bounce
   * settles in the same statement (hard: bounced, soft: failed after its last retry).
   */
  smtpResponse?: string | null;
};

export type SuppressionPolicy = { softBounceLimit: number; softBounceWindowDays: number };

export type Recorded = {
  id: number;
  /** The reader's status after the policy, when the bounce matched one who still exists. */
  subscriberStatus: string | null;
  /** True when this bounce is what suppressed the reader. */
  suppressed: boolean;
};

const MAX_TEXT = 2000;
const cap = (v: string | null | undefined, n = MAX_TEXT): string | null => (v == null ? null : v.slice(0, n));

/**
 * The bounce row, once only per (source, event id): the first CTE of every statement below, with
 * parameters $1 to $15 (see inserted). It returns nothing when the event was already recorded,
 * and then the rest of the statement changes nothing. The `occurred_at` it returns is never later
 * than now: a report dated in the future counts from now.
 */
const INSERT = `ins AS (
       INSERT INTO bounces (type, source, subscriber_id, message_id, send_id, matched_by, recipient, action, status,
                            diagnostic, remote_mta, feedback_type, event_id, report_id, occurred_at)
       VALUES ($1::bounce_type, $2::bounce_source, $3::bigint, $4::bigint, $5::bigint, $6::text, $7::text, $8::text, $9::text,
               $10::text, $11::text, $12::text, $13::text, $14::bigint, COALESCE($15::timestamptz, now()))
       ON CONFLICT (source, event_id) DO NOTHING
       RETURNING id, subscriber_id, message_id, LEAST(occurred_at, now()) AS occurred_at
     )`;

function inserted(type: BounceType, b: BounceInput): unknown[] {
  const m = b.match;
  return [
    type,
    b.source,
    m?.subscriberId ?? null,
    m?.messageId ?? null,
    m?.sendId ?? null,
    m?.matchedBy ?? null,
    cap(b.recipient, 320),
    cap(b.action, 40),
    cap(b.status, 20),
    cap(b.diagnostic),
    cap(b.remoteMta, 255),
    cap(b.feedbackType, 40),
    cap(b.eventId, 255),
    b.reportId ?? null,
    b.occurredAt ?? null,
  ];
}

/**
 * The last part of every statement that updates a reader (the CTE `reader`): the reader's status
 * as it now is, also when the row was not updated (an erased reader has none: null).
 */
const RESULT = `SELECT ins.id,
            COALESCE(reader.status::text, (SELECT status::text FROM subscribers WHERE id = ins.subscriber_id)) AS subscriber_status,
            reader.suppressed
       FROM ins LEFT JOIN reader ON reader.id = ins.subscriber_id`;

/** What `reader` returns: suppressed when this statement set bounced_at or complained_at. */
const READER_RETURNING = 'RETURNING s.id, s.status, (s.bounced_at = now() OR s.complained_at = now()) AS suppressed';

type ResultRow = { id: number; subscriber_status: string | null; suppressed: boolean | null };

async function run(pool: Pool, text: string, values: unknown[]): Promise<Recorded | undefined> {
  const { rows } = await pool.query<ResultRow>(text, values);
  const row = rows[0];
  if (!row) return undefined;
  return { id: row.id, subscriberStatus: row.subscriber_status, suppressed: row.suppressed === true };
}

/**
 * Records one bounce and applies the policy to its reader in one statement, the one for its type
 * (see each). Every statement updates the reader's row in place with values computed from its
 * own current columns, so two bounces for one reader at once serialise on the row lock and the
 * second sees the first's result: no read-then-write race. Undefined when the event was already
 * recorded.
 */
export function writeBounce(pool: Pool, b: BounceInput, policy: SuppressionPolicy): Promise<Recorded | undefined> {
  switch (b.type) {
    case 'hard':
      return writeHardBounce(pool, b);
    case 'soft':
      return writeSoftBounce(pool, b, policy);
    case 'complaint':
      return writeComplaint(pool, b);
    case 'other':
      return writeOther(pool, b);
  }
}

/**
 * A hard bounce: the reader is suppressed (bounced) at once, unless already suppressed, and the
 * message is marked bounced: one the relay had accepted, or, for a refusal at submission, the
 * one being submitted (its reply stored with it).
 */
function writeHardBounce(pool: Pool, b: BounceInput): Promise<Recorded | undefined> {
  return run(
    pool,
    `WITH ${INSERT}, message AS (
       UPDATE messages m SET status = 'bounced', smtp_response = COALESCE($16::text, m.smtp_response), updated_at = now()
         FROM ins i
        WHERE m.id = i.message_id AND m.status IN ('submitted', 'sending')
     ), reader AS (
       UPDATE subscribers s
          SET status = CASE WHEN s.status IN ('pending', 'active') THEN 'bounced'::subscriber_status ELSE s.status END,
              bounced_at = CASE WHEN s.status IN ('pending', 'active') THEN now() ELSE s.bounced_at END,
              updated_at = now()
         FROM ins i
        WHERE s.id = i.subscriber_id
        ${READER_RETURNING}
     )
     ${RESULT}`,
    [...inserted('hard', b), cap(b.smtpResponse, 1000)],
  );
}

/**
 * A complaint: the reader is suppressed (complained) at once, whatever their status: a
 * complaint is stronger than an unsubscription or a bounce. The message is left as it was.
 */
function writeComplaint(pool: Pool, b: BounceInput): Promise<Recorded | undefined> {
  return run(
    pool,
    `WITH ${INSERT}, reader AS (
       UPDATE subscribers s
          SET status = 'complained',
              complained_at = CASE WHEN s.status <> 'complained' THEN now() ELSE s.complained_at END,
              updated_at = now()
         FROM ins i
        WHERE s.id = i.subscriber_id
        ${READER_RETURNING}
     )
     ${RESULT}`,
    inserted('complaint', b),
  );
}

/**
 * A soft bounce: its time joins the reader's recent soft bounces (those within the window, at
 * most `softBounceLimit` kept); at `softBounceLimit` of them the reader is suppressed (bounced).
 * When the reader's probe (see markSubmitted), another message, drew no bounce
 * (soft_bounce_probe_went_through, migration 0008), mail gets through again: the earlier ones
 * are forgotten first. A soft bounce of a known message settles the probe either way: it was
 * that message, or it went through (reset here) or had bounced. A refusal at submission (source
 * smtp) also marks the message being submitted failed, after its last retry.
 */
function writeSoftBounce(pool: Pool, b: BounceInput, policy: SuppressionPolicy): Promise<Recorded | undefined> {
  return run(
    pool,
    `WITH ${INSERT}, message AS (
       UPDATE messages m SET status = 'failed', smtp_response = COALESCE($16::text, m.smtp_response), updated_at = now()
         FROM ins i
        WHERE m.id = i.message_id AND $17::boolean AND m.status = 'sending'
     ), reader AS (
       UPDATE subscribers s
          SET (status, bounced_at, soft_bounces, soft_bounce_probe, updated_at) = (
                SELECT CASE WHEN n.suppress THEN 'bounced'::subscriber_status ELSE s.status END,
                       CASE WHEN n.suppress THEN now() ELSE s.bounced_at END,
                       n.recent,
                       CASE WHEN i.message_id IS NOT NULL THEN NULL ELSE s.soft_bounce_probe END,
                       now()
                  FROM (SELECT w.recent, s.status IN ('pending', 'active') AND cardinality(w.recent) >= $18::int AS suppress
                          FROM (SELECT ARRAY(
                                  SELECT t FROM unnest(CASE
                                      -- The probe drew no bounce: it went through, the earlier soft
                                      -- bounces no longer count. (Not when it is this message: its
                                      -- bounce is this row, which the statement cannot see.)
                                      WHEN i.message_id IS NOT NULL AND s.soft_bounce_probe <> i.message_id
                                           AND soft_bounce_probe_went_through(s.soft_bounce_probe)
                                        THEN '{}'
                                      ELSE COALESCE(s.soft_bounces, '{}')
                                    END || i.occurred_at) AS t
                                   WHERE t > now() - make_interval(days => $19::int)
                                   ORDER BY t DESC LIMIT $18::int) AS recent) w) n)
         FROM ins i
        WHERE s.id = i.subscriber_id
        ${READER_RETURNING}
     )
     ${RESULT}`,
    [...inserted('soft', b), cap(b.smtpResponse, 1000), b.source === 'smtp', policy.softBounceLimit, policy.softBounceWindowDays],
  );
}

/** Anything else (delay warnings, ARF reports that are not abuse, provider events we only keep): stored, nobody changed. */
function writeOther(pool: Pool, b: BounceInput): Promise<Recorded | undefined> {
  return run(
    pool,
    `WITH ${INSERT}
     SELECT ins.id, (SELECT status::text FROM subscribers WHERE id = ins.subscriber_id) AS subscriber_status, false AS suppressed
       FROM ins`,
    inserted('other', b),
  );
}

/**
 * The message a token names, when the token is ours (signature checked) and the message exists.
 * Candidates are tried in order; the first that verifies decides.
 */
export async function matchToken(
  pool: Pool,
  tokens: MessageTokens,
  candidates: { token: string | null | undefined; matchedBy: MatchKind }[],
): Promise<Match | null> {
  for (const { token, matchedBy } of candidates) {
    const id = token ? tokens.verify(token) : undefined;
    if (id === undefined) continue;
    const { rows } = await pool.query<{ subscriber_id: number; send_id: number }>('SELECT subscriber_id, send_id FROM messages WHERE id = $1::bigint', [id]);
    if (rows[0]) return { messageId: id, subscriberId: rows[0].subscriber_id, sendId: rows[0].send_id, matchedBy };
  }
  return null;
}

/**
 * A reader by address: only for events whose sender we authenticated (a signed provider webhook),
 * never for mail to the listener, which anyone can send.
 */
export async function matchAddress(pool: Pool, normalizedAddress: string | null): Promise<Match | null> {
  if (!normalizedAddress) return null;
  const { rows } = await pool.query<{ id: number }>('SELECT id FROM subscribers WHERE email_normalized = $1::text', [normalizedAddress]);
  return rows[0] ? { messageId: null, subscriberId: rows[0].id, sendId: null, matchedBy: 'address' } : null;
}
