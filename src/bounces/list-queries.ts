// SQL for the editor's view of bounces and complaints, and of the raw reports behind them.
import type { Pool } from '../db/pool.js';
import { SqlFilters } from '../db/sql-filters.js';
import type { BounceSource, BounceType } from '../shared/statuses.js';
import type { MatchKind } from './queries.js';

export type BounceListFilter = {
  type?: BounceType;
  source?: BounceSource;
  /** Bounces of this issue's send (through sends.issue_id). */
  issueId?: number;
  /** occurred_at >= since */
  since?: Date;
  /** occurred_at < until */
  until?: Date;
  /** false: only the rows that matched no reader; true: only those that did. */
  matched?: boolean;
  subscriberId?: number;
  /** Keyset cursor, newest first: only ids below this one. */
  beforeId?: number;
  limit: number;
};

export type BounceListRow = {
  id: number;
  type: BounceType;
  source: BounceSource;
  subscriber_id: number | null;
  /** The reader's current address; null when unmatched or the reader is gone. */
  email: string | null;
  recipient: string | null;
  message_id: number | null;
  send_id: number | null;
  issue_id: number | null;
  matched_by: MatchKind | null;
  action: string | null;
  status: string | null;
  diagnostic: string | null;
  remote_mta: string | null;
  feedback_type: string | null;
  report_id: number | null;
  occurred_at: Date;
  created_at: Date;
};

/**
 * Keyset pagination by id, newest first: stable under concurrent inserts (new rows get higher
 * ids, so they never shift a page the editor is walking), O(limit) at any depth.
 * `subscriber_id IS NULL` is written out literally so the partial index bounces_unmatched serves
 * the matched=false listing.
 */
export async function listBounces(pool: Pool, f: BounceListFilter): Promise<BounceListRow[]> {
  const filters = new SqlFilters()
    .optional('b.id < $1::bigint', f.beforeId)
    .optional('b.type = $1::bounce_type', f.type)
    .optional('b.source = $1::bounce_source', f.source)
    .optional('s.issue_id = $1::bigint', f.issueId)
    .optional('b.occurred_at >= $1::timestamptz', f.since)
    .optional('b.occurred_at < $1::timestamptz', f.until)
    .optional('b.subscriber_id = $1::bigint', f.subscriberId);
  if (f.matched !== undefined) filters.add(f.matched ? 'b.subscriber_id IS NOT NULL' : 'b.subscriber_id IS NULL');
  const { rows } = await pool.query<BounceListRow>(
    `SELECT b.id, b.type::text AS type, b.source::text AS source, b.subscriber_id, sub.email, b.recipient,
            b.message_id, b.send_id, s.issue_id, b.matched_by, b.action, b.status, b.diagnostic, b.remote_mta,
            b.feedback_type, b.report_id, b.occurred_at, b.created_at
       FROM bounces b
       LEFT JOIN subscribers sub ON sub.id = b.subscriber_id
       LEFT JOIN sends s ON s.id = b.send_id
      ${filters.where}
      ORDER BY b.id DESC
      LIMIT ${filters.param(f.limit)}::int`,
    filters.params,
  );
  return rows;
}

/** The bytes of a mail the bounce listener accepted, as it arrived. */
export async function findInboundReportRaw(pool: Pool, id: number): Promise<Buffer | undefined> {
  const { rows } = await pool.query<{ raw: Buffer }>('SELECT raw FROM inbound_reports WHERE id = $1::bigint', [id]);
  return rows[0]?.raw;
}
