// SQL for the editor's view of bounces and complaints, and of the raw reports behind them.
import type { Pool } from '../db/pool.js';
import type { BounceSource, BounceType, MatchKind } from './queries.js';

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
 * ids, so they never shift a page the editor is walking), O(limit) at any depth. Conditions are
 * fixed SQL fragments chosen by which filters are set; values only ever travel as parameters.
 * `subscriber_id IS NULL` is written out literally so the partial index bounces_unmatched serves
 * the matched=false listing.
 */
export async function listBounces(pool: Pool, f: BounceListFilter): Promise<BounceListRow[]> {
  const where: string[] = [];
  const params: unknown[] = [];
  // Every ? in a condition stands for the one value it is added with.
  const add = (sql: string, value: unknown) => {
    params.push(value);
    where.push(sql.replaceAll('?', `$${params.length}`));
  };
  if (f.beforeId !== undefined) add('b.id < ?::bigint', f.beforeId);
  if (f.type) add('b.type = ?::bounce_type', f.type);
  if (f.source) add('b.source = ?::bounce_source', f.source);
  if (f.issueId !== undefined) add('s.issue_id = ?::bigint', f.issueId);
  if (f.since) add('b.occurred_at >= ?::timestamptz', f.since);
  if (f.until) add('b.occurred_at < ?::timestamptz', f.until);
  if (f.matched === false) where.push('b.subscriber_id IS NULL');
  if (f.matched === true) where.push('b.subscriber_id IS NOT NULL');
  if (f.subscriberId !== undefined) add('b.subscriber_id = ?::bigint', f.subscriberId);
  params.push(f.limit);
  const { rows } = await pool.query<BounceListRow>(
    `SELECT b.id, b.type::text AS type, b.source::text AS source, b.subscriber_id, sub.email, b.recipient,
            b.message_id, b.send_id, s.issue_id, b.matched_by, b.action, b.status, b.diagnostic, b.remote_mta,
            b.feedback_type, b.report_id, b.occurred_at, b.created_at
       FROM bounces b
       LEFT JOIN subscribers sub ON sub.id = b.subscriber_id
       LEFT JOIN sends s ON s.id = b.send_id
      ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
      ORDER BY b.id DESC
      LIMIT $${params.length}::int`,
    params,
  );
  return rows;
}

/** The bytes of a mail the bounce listener accepted, as it arrived. */
export async function findInboundReportRaw(pool: Pool, id: number): Promise<Buffer | undefined> {
  const { rows } = await pool.query<{ raw: Buffer }>('SELECT raw FROM inbound_reports WHERE id = $1::bigint', [id]);
  return rows[0]?.raw;
}
