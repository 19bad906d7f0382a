// SQL for recording bounces and complaints and applying the suppression policy.
import type { Pool } from '../db/pool.js';
import type { MessageTokens } from '../sending/message-tokens.js';

export const bounceTypes = ['hard', 'soft', 'complaint', 'other'] as const;
export type BounceType = (typeof bounceTypes)[number];
export const bounceSources = ['smtp', 'dsn', 'arf', 'ses', 'postmark', 'sendgrid', 'mailgun'] as const;
export type BounceSource = (typeof bounceSources)[number];
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
 * Records one bounce and applies the policy to its reader, in one statement:
 * - hard bounce: the reader is suppressed (bounced) at once, and the message is marked bounced
 *   (one the relay had accepted, or, for a refusal at submission, the one being submitted);
 * - complaint: suppressed (complained) at once, whatever their status (a complaint is stronger
 *   than an unsubscription or a bounce);
 * - soft bounce: its time joins the reader's recent soft bounces (those within the window); at
 *   `softBounceLimit` of them the reader is suppressed (bounced). A message submitted to them
 *   after their last soft bounce that drew no bounce itself (the probe, see markSubmitted) means
 *   mail gets through again: the earlier ones are forgotten;
 * - other (delay warnings, ARF reports that are not abuse, provider events we only keep): stored.
 *
 * The reader's row is updated in place with values computed from its own current columns, so two
 * bounces for one reader at once serialise on the row lock and the second sees the first's
 * result: no read-then-write race. Returns undefined when the event was already recorded.
 */
export async function recordBounce(pool: Pool, b: BounceInput, policy: SuppressionPolicy): Promise<Recorded | undefined> {
  const m = b.match;
  const { rows } = await pool.query<{ id: number; subscriber_status: string | null; suppressed: boolean | null }>(
    `WITH ins AS (
       INSERT INTO bounces (type, source, subscriber_id, message_id, send_id, matched_by, recipient, action, status,
                            diagnostic, remote_mta, feedback_type, event_id, report_id, occurred_at)
       VALUES ($1::bounce_type, $2::bounce_source, $3::bigint, $4::bigint, $5::bigint, $6::text, $7::text, $8::text, $9::text,
               $10::text, $11::text, $12::text, $13::text, $14::bigint, COALESCE($15::timestamptz, now()))
       ON CONFLICT (source, event_id) DO NOTHING
       RETURNING id, type, subscriber_id, message_id, LEAST(occurred_at, now()) AS occurred_at
     ), message AS (
       UPDATE messages m SET status = CASE WHEN i.type = 'hard' THEN 'bounced'::message_status ELSE 'failed'::message_status END,
                             smtp_response = COALESCE($18::text, m.smtp_response), updated_at = now()
         FROM ins i
        WHERE m.id = i.message_id
          AND ((i.type = 'hard' AND m.status IN ('submitted', 'sending'))
               OR ($19::boolean AND i.type = 'soft' AND m.status = 'sending'))
     ), reader AS (
       UPDATE subscribers s
          SET (status, bounced_at, complained_at, soft_bounces, soft_bounce_probe, updated_at) = (
                SELECT n.status,
                       CASE WHEN n.status = 'bounced' AND s.status <> 'bounced' THEN now() ELSE s.bounced_at END,
                       CASE WHEN n.status = 'complained' AND s.status <> 'complained' THEN now() ELSE s.complained_at END,
                       n.recent,
                       -- A soft bounce of a known message settles the probe: it was that message
                       -- (failed), or the probe went through (reset below) or had bounced.
                       CASE WHEN i.type = 'soft' AND i.message_id IS NOT NULL THEN NULL ELSE s.soft_bounce_probe END,
                       now()
                  FROM (SELECT CASE
                                 WHEN i.type = 'complaint' THEN 'complained'::subscriber_status
                                 WHEN s.status IN ('pending', 'active')
                                      AND (i.type = 'hard' OR (i.type = 'soft' AND cardinality(w.recent) >= $16::int))
                                   THEN 'bounced'::subscriber_status
                                 ELSE s.status
                               END AS status,
                               w.recent
                          FROM (SELECT CASE WHEN i.type = 'soft' THEN ARRAY(
                                         SELECT t FROM unnest(CASE
                                             -- The probe, another message, drew no bounce: it went
                                             -- through, so the earlier soft bounces no longer count.
                                             WHEN s.soft_bounce_probe IS NOT NULL AND i.message_id IS NOT NULL
                                                  AND s.soft_bounce_probe <> i.message_id
                                                  AND NOT EXISTS (SELECT 1 FROM bounces b
                                                                   WHERE b.message_id = s.soft_bounce_probe AND b.type IN ('hard', 'soft'))
                                               THEN '{}'
                                             ELSE COALESCE(s.soft_bounces, '{}')
                                           END || i.occurred_at) AS t
                                          WHERE t > now() - make_interval(days => $17::int)
                                          ORDER BY t DESC LIMIT $16::int)
                                       ELSE s.soft_bounces END AS recent) w) n)
         FROM ins i
        WHERE s.id = i.subscriber_id AND i.type <> 'other'
        RETURNING s.id, s.status, (s.bounced_at = now() OR s.complained_at = now()) AS suppressed
     )
     SELECT ins.id,
            COALESCE(reader.status::text, (SELECT status::text FROM subscribers WHERE id = ins.subscriber_id)) AS subscriber_status,
            reader.suppressed
       FROM ins LEFT JOIN reader ON reader.id = ins.subscriber_id`,
    [
      b.type, b.source, m?.subscriberId ?? null, m?.messageId ?? null, m?.sendId ?? null, m?.matchedBy ?? null,
      cap(b.recipient, 320), cap(b.action, 40), cap(b.status, 20), cap(b.diagnostic), cap(b.remoteMta, 255), cap(b.feedbackType, 40),
      cap(b.eventId, 255), b.reportId ?? null, b.occurredAt ?? null,
      policy.softBounceLimit, policy.softBounceWindowDays,
      cap(b.smtpResponse, 1000), b.source === 'smtp',
    ],
  );
  const row = rows[0];
  if (!row) return undefined;
  return { id: row.id, subscriberStatus: row.subscriber_status, suppressed: row.suppressed === true };
}

/**
 * The message a token names, when the token is ours (signature checked) and the message exists.
 * Candidates are tried in order; the first that verifies decides.
 */
export async function matchToken(pool: Pool, tokens: MessageTokens, candidates: { token: string | null | undefined; matchedBy: MatchKind }[]): Promise<Match | null> {
  for (const { token, matchedBy } of candidates) {
    const id = token ? tokens.verify(token) : undefined;
    if (id === undefined) continue;
    const { rows } = await pool.query<{ subscriber_id: number; send_id: number }>(
      'SELECT subscriber_id, send_id FROM messages WHERE id = $1::bigint',
      [id],
    );
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

/**
 * Keeps a mail the listener accepted. Undefined when the very same bytes were stored before (the
 * sender retried after losing our reply): the caller answers 250 and records nothing twice.
 */
export async function storeInboundReport(
  pool: Pool,
  r: { mailFrom: string | null; rcptTo: string; kind: string; raw: Buffer; sha256: Buffer },
): Promise<number | undefined> {
  const { rows } = await pool.query<{ id: number }>(
    `INSERT INTO inbound_reports (mail_from, rcpt_to, kind, size, sha256, raw)
     VALUES ($1::text, $2::text, $3::text, $4::int, $5::bytea, $6::bytea)
     ON CONFLICT (sha256) DO NOTHING RETURNING id`,
    [cap(r.mailFrom, 320), cap(r.rcptTo, 320), r.kind, r.raw.length, r.sha256, r.raw],
  );
  return rows[0]?.id;
}

/** The report already stored with these bytes (when storeInboundReport found it there). */
export async function findInboundReportId(pool: Pool, sha256: Buffer): Promise<number | null> {
  const { rows } = await pool.query<{ id: number }>('SELECT id FROM inbound_reports WHERE sha256 = $1::bytea', [sha256]);
  return rows[0]?.id ?? null;
}
