// SQL for subscribers. Every state change is one statement guarded by the state it expects.
import type { Pool } from '../db/pool.js';
import { SqlFilters } from '../db/sql-filters.js';
import { type ConsentSource, type SubscriberStatus, subscriberStatuses } from '../shared/statuses.js';

export type SubscriberRow = {
  id: number;
  email: string;
  email_normalized: string;
  name: string | null;
  status: SubscriberStatus;
  created_at: Date;
  updated_at: Date;
  confirmation_sent_at: Date | null;
  confirmed_at: Date | null;
  unsubscribed_at: Date | null;
  bounced_at: Date | null;
  complained_at: Date | null;
  consent_at: Date;
  consent_source: ConsentSource;
  consent_ip: string | null;
  consent_user_agent: string | null;
  confirm_ip: string | null;
  confirm_user_agent: string | null;
  data_link_sent_at: Date | null;
};

export type Evidence = { ip: string | null; userAgent: string | null };

/** At most one confirmation email per address in this window, however often it signs up. */
export const CONFIRMATION_RESEND_INTERVAL = '10 minutes';

/** SQL expression for the suppression hash of a normalised address held in `expr`. */
const HASH = (expr: string) => `sha256(convert_to(${expr}, 'UTF8'))`;

export async function findSubscriber(pool: Pool, id: number): Promise<SubscriberRow | undefined> {
  const { rows } = await pool.query<SubscriberRow>('SELECT * FROM subscribers WHERE id = $1::bigint', [id]);
  return rows[0];
}

/** What a reader mail needs of its reader. */
export type MailRecipient = Pick<SubscriberRow, 'id' | 'email' | 'name' | 'status'>;

/** The reader a reader mail goes to, as it is now; only the columns the mail uses (no dates to parse). */
export async function findMailRecipient(pool: Pool, id: number): Promise<MailRecipient | undefined> {
  // Named: it runs for every reader mail, and each connection parses and plans it once.
  const { rows } = await pool.query<MailRecipient>({
    name: 'find-mail-recipient',
    text: 'SELECT id, email, name, status FROM subscribers WHERE id = $1::bigint',
    values: [id],
  });
  return rows[0];
}

/**
 * A sign-up from the form or its JSON twin. Inserts a pending reader, or, for a known address
 * that is not active, records the new request, but only when no confirmation went out in the
 * last ten minutes. Returns the row when a confirmation should be sent, nothing otherwise.
 * An active reader is never touched. A suppressed (bounced, complained, unsubscribed) reader
 * keeps its status until it confirms again.
 */
export async function requestSubscription(
  pool: Pool,
  a: { email: string; normalized: string; name: string | null; evidence: Evidence },
): Promise<{ id: number; confirmation_sent_at: Date } | undefined> {
  // Named: it runs for every sign-up, and each connection parses and plans it once.
  const { rows } = await pool.query<{ id: number; confirmation_sent_at: Date }>({
    name: 'request-subscription',
    text: `INSERT INTO subscribers (email, email_normalized, name, status, consent_source, consent_ip, consent_user_agent, confirmation_sent_at)
     VALUES ($1::text, $2::text, $3::text, 'pending', 'form', $4::inet, $5::text, now())
     ON CONFLICT (email_normalized) DO UPDATE
        SET confirmation_sent_at = now(),
            name = COALESCE(EXCLUDED.name, subscribers.name),
            consent_at = now(), consent_source = 'form',
            consent_ip = EXCLUDED.consent_ip, consent_user_agent = EXCLUDED.consent_user_agent,
            updated_at = now()
      WHERE subscribers.status <> 'active'
        AND (subscribers.confirmation_sent_at IS NULL
             OR subscribers.confirmation_sent_at < now() - interval '${CONFIRMATION_RESEND_INTERVAL}')
     RETURNING id, confirmation_sent_at`,
    values: [a.email, a.normalized, a.name, a.evidence.ip, a.evidence.userAgent],
  });
  return rows[0];
}

/** At most one link to a reader's data per reader in this many minutes, however often it is asked for. */
export const DATA_LINK_RESEND_MINUTES = 5;

/**
 * Someone with the reader's manage link asked for a link to their data. Takes the slot for one
 * mail in one statement (two requests at once: one wins), so nobody can flood the reader's inbox
 * through a forwarded footer. A bounced reader's address takes no mail: no slot. Returns when
 * the mail should be queued, nothing otherwise.
 */
export async function requestDataLink(pool: Pool, id: number): Promise<{ id: number; data_link_sent_at: Date } | undefined> {
  const { rows } = await pool.query<{ id: number; data_link_sent_at: Date }>(
    `UPDATE subscribers SET data_link_sent_at = now()
      WHERE id = $1::bigint AND status <> 'bounced'
        AND (data_link_sent_at IS NULL OR data_link_sent_at < now() - interval '${DATA_LINK_RESEND_MINUTES} minutes')
      RETURNING id, data_link_sent_at`,
    [id],
  );
  return rows[0];
}

/** Undoes the data-link window when its mail could not be queued, so a retry can send one. */
export async function releaseDataLinkSlot(pool: Pool, id: number, sentAt: Date): Promise<void> {
  await pool.query('UPDATE subscribers SET data_link_sent_at = NULL WHERE id = $1::bigint AND data_link_sent_at = $2::timestamptz', [id, sentAt]);
}

/** Undoes the resend window when the confirmation could not be queued, so a retry can send one. */
export async function releaseConfirmationSlot(pool: Pool, id: number, sentAt: Date): Promise<void> {
  await pool.query('UPDATE subscribers SET confirmation_sent_at = NULL WHERE id = $1::bigint AND confirmation_sent_at = $2::timestamptz', [id, sentAt]);
}

/**
 * The reader pressed the confirm button. Activates any non-active reader (a new explicit
 * consent also lifts an erasure suppression for the address). Returns undefined when the reader
 * was already active or no longer exists.
 */
export async function confirmSubscription(pool: Pool, id: number, evidence: Evidence): Promise<{ id: number; confirmed_at: Date } | undefined> {
  const { rows } = await pool.query<{ id: number; confirmed_at: Date }>(
    `WITH confirmed AS (
       UPDATE subscribers
          SET status = 'active', confirmed_at = now(), updated_at = now(),
              confirm_ip = $2::inet, confirm_user_agent = $3::text
        WHERE id = $1::bigint AND status <> 'active'
        RETURNING id, confirmed_at, email_normalized
     ), lifted AS (
       DELETE FROM suppressions WHERE email_hash IN (SELECT ${HASH('email_normalized')} FROM confirmed)
     )
     SELECT id, confirmed_at FROM confirmed`,
    [id, evidence.ip, evidence.userAgent],
  );
  return rows[0];
}

/** One-click unsubscribe. Bounced and complained readers keep that (stronger) status. */
export async function unsubscribe(pool: Pool, id: number): Promise<SubscriberStatus | undefined> {
  const { rows } = await pool.query<{ status: SubscriberStatus }>(
    `WITH changed AS (
       UPDATE subscribers SET status = 'unsubscribed', unsubscribed_at = now(), updated_at = now()
        WHERE id = $1::bigint AND status IN ('pending', 'active')
        RETURNING status
     )
     SELECT status FROM changed
     UNION ALL
     SELECT status FROM subscribers WHERE id = $1::bigint AND NOT EXISTS (SELECT 1 FROM changed)`,
    [id],
  );
  return rows[0]?.status;
}

/**
 * Erasure (GDPR): deletes the reader's personal data and keeps only a hash of the address so no
 * later import or API call can add it again. Their bounce rows lose the address and the remote
 * server's text (which may quote it) and their raw reports go; the rows stay for the counts.
 * Returns false when there was nothing to erase.
 */
export async function eraseSubscriber(pool: Pool, id: number): Promise<boolean> {
  const { rows } = await pool.query(
    `WITH gone AS (DELETE FROM subscribers WHERE id = $1::bigint RETURNING email_normalized, status),
     scrubbed AS (UPDATE bounces SET recipient = NULL, diagnostic = NULL WHERE subscriber_id = $1::bigint RETURNING report_id),
     reports AS (DELETE FROM inbound_reports WHERE id IN (SELECT report_id FROM scrubbed))
     INSERT INTO suppressions (email_hash, reason)
     SELECT ${HASH('email_normalized')}, 'erased (was ' || status || ')' FROM gone
     ON CONFLICT (email_hash) DO UPDATE SET reason = EXCLUDED.reason, created_at = now()
     RETURNING 1`,
    [id],
  );
  return rows.length > 0;
}

export type ImportCandidate = { email: string; normalized: string; name: string | null };
export type ImportOutcome = { accepted: Set<string>; refused: Map<string, ImportRefusal> };
export type ImportRefusal = 'already_active' | 'unsubscribed' | 'bounced' | 'complained' | 'erased';

/**
 * Adds readers as active on the editor's word (API or CSV import), one statement per batch.
 * Never revives an unsubscribed, bounced, complained or erased address; a pending one becomes
 * active unless its address is erased (a reader who signed up again after erasure stays pending
 * until they confirm). Each candidate gets exactly one outcome (one that a concurrent statement
 * inserted after this one's snapshot counts as already active). `candidates` must not repeat a
 * normalised address.
 */
export async function importSubscribers(
  pool: Pool,
  candidates: ImportCandidate[],
  consent: { source: 'api' | 'import'; at: Date | null; ip: string | null; userAgent: string | null },
): Promise<ImportOutcome> {
  const emails = candidates.map((c) => c.email);
  const normalized = candidates.map((c) => c.normalized);
  const names = candidates.map((c) => c.name);
  const { rows } = await pool.query<{ email_normalized: string; outcome: string }>(
    `WITH input AS (
       SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) AS t(email, email_normalized, name)
     ), suppressed AS (
       SELECT i.email_normalized FROM input i JOIN suppressions s ON s.email_hash = ${HASH('i.email_normalized')}
     ), upserted AS (
       INSERT INTO subscribers (email, email_normalized, name, status, confirmed_at, consent_source, consent_at, consent_ip, consent_user_agent)
       SELECT email, email_normalized, name, 'active', now(), $4::consent_source, COALESCE($5::timestamptz, now()), $6::inet, $7::text
         FROM input WHERE email_normalized NOT IN (SELECT email_normalized FROM suppressed)
       ON CONFLICT (email_normalized) DO UPDATE
          SET status = 'active', confirmed_at = now(), updated_at = now(),
              name = COALESCE(EXCLUDED.name, subscribers.name),
              consent_source = EXCLUDED.consent_source, consent_at = EXCLUDED.consent_at,
              consent_ip = EXCLUDED.consent_ip, consent_user_agent = EXCLUDED.consent_user_agent
        WHERE subscribers.status = 'pending'
       RETURNING email_normalized
     )
     SELECT email_normalized, 'accepted' AS outcome FROM upserted
     UNION ALL
     SELECT email_normalized, 'erased' FROM suppressed
     UNION ALL
     SELECT s.email_normalized, CASE WHEN s.status = 'active' THEN 'already_active' ELSE s.status::text END
       FROM subscribers s JOIN input i USING (email_normalized)
      WHERE s.email_normalized NOT IN (SELECT email_normalized FROM upserted)
        AND s.email_normalized NOT IN (SELECT email_normalized FROM suppressed)`,
    [emails, normalized, names, consent.source, consent.at, consent.ip, consent.userAgent],
  );
  const accepted = new Set<string>();
  const refused = new Map<string, ImportRefusal>();
  for (const r of rows) {
    if (r.outcome === 'accepted') accepted.add(r.email_normalized);
    else refused.set(r.email_normalized, r.outcome as ImportRefusal);
  }
  // No row at all: a concurrent statement inserted the address after this one's snapshot (its
  // insert then found the conflict and, the row not being pending, changed nothing).
  for (const c of candidates) {
    if (!accepted.has(c.normalized) && !refused.has(c.normalized)) refused.set(c.normalized, 'already_active');
  }
  return { accepted, refused };
}

export type ListFilter = {
  status?: SubscriberStatus;
  source?: ConsentSource;
  email?: string;
  createdAfter?: Date;
  createdBefore?: Date;
  afterId?: number;
  limit: number;
};

/** Keyset pagination by id: stable under concurrent inserts, O(limit) at any depth. */
export async function listSubscribers(pool: Pool, f: ListFilter): Promise<SubscriberRow[]> {
  const filters = new SqlFilters()
    .optional('id > $1::bigint', f.afterId)
    .optional('status = $1::subscriber_status', f.status)
    .optional('consent_source = $1::consent_source', f.source)
    // Matched against the normalised address and the address as typed, so an IDN domain is found
    // by its Unicode spelling too. The pattern is escaped: % and _ in the filter are literal.
    .optional(
      '(email_normalized LIKE $1::text OR lower(email) LIKE $1::text)',
      f.email ? `%${f.email.toLowerCase().replace(/[\\%_]/g, (c) => `\\${c}`)}%` : undefined,
    )
    .optional('created_at >= $1::timestamptz', f.createdAfter)
    .optional('created_at < $1::timestamptz', f.createdBefore);
  const { rows } = await pool.query<SubscriberRow>(
    `SELECT * FROM subscribers ${filters.where} ORDER BY id LIMIT ${filters.param(f.limit)}::int`,
    filters.params,
  );
  return rows;
}

/** How many readers have each status; a status nobody has counts 0. */
export async function countSubscribersByStatus(pool: Pool): Promise<Record<SubscriberStatus, number>> {
  const { rows } = await pool.query<{ status: SubscriberStatus; n: string }>('SELECT status, count(*) AS n FROM subscribers GROUP BY status');
  const counts = Object.fromEntries(subscriberStatuses.map((s) => [s, 0])) as Record<SubscriberStatus, number>;
  for (const r of rows) counts[r.status] = Number(r.n);
  return counts;
}
