import type { Container } from '../../container.js';
import type { Pool } from '../../db/pool.js';

/**
 * How long the raw mail of an inbound report is kept, in days (0: for good).
 * - matched: a bounce row with a reader links to it. Everything the report said that we use is
 *   in that row (type, status, diagnostic, recipient); the raw mail only backs it up, for an
 *   editor checking a suppression soon after it happened.
 * - unmatched: nothing links it to a reader (unreadable, a forged or foreign token, junk). The
 *   raw mail is all there is, for an operator finding out why it matched nothing.
 * The bounce rows stay either way (bounces.report_id becomes NULL): counts and suppressions
 * never depend on the raw mail.
 */
export type RetentionPolicy = { matchedDays: number; unmatchedDays: number };

export type PruneResult = { deleted: number; scanned: number };

/** Rows examined per statement: each statement is short, whatever the table holds. */
const SCAN_BATCH = 1000;

/** How often a worker prunes (and once at its start). Retention is counted in days: hourly is plenty. */
const PRUNE_EVERY_MS = 60 * 60 * 1000;

/**
 * Deletes the raw reports past their retention, oldest first, one keyset batch of at most
 * `scanBatch` reports per statement, until none is left or `shouldStop()`.
 *
 * Idempotent and safe to run in any number of processes at once: a report another process
 * deleted first is skipped (its row lock makes this one wait, then find it gone). A report
 * being stored right now is young, so never in a batch. Each run walks the reports older than
 * the shorter retention once (the keyset moves on past the ones kept), so the unmatched reports
 * still within their longer retention cost one index read per run, not one per batch.
 */
export async function pruneInboundReports(
  pool: Pool,
  policy: RetentionPolicy,
  opts: { scanBatch?: number; shouldStop?: () => boolean } = {},
): Promise<PruneResult> {
  const days = [policy.matchedDays, policy.unmatchedDays].filter((d) => d > 0);
  if (days.length === 0) return { deleted: 0, scanned: 0 };
  const scanBatch = opts.scanBatch ?? SCAN_BATCH;
  // The cursor as Postgres text, not a JS Date: received_at has microseconds, a Date only
  // milliseconds, and a rounded cursor would scan rows again (or forever, past a batch of
  // reports received within one millisecond).
  let after: { at: string; id: number } = { at: '-infinity', id: 0 };
  const total: PruneResult = { deleted: 0, scanned: 0 };
  while (!opts.shouldStop?.()) {
    const { rows } = await pool.query<{ deleted: number; scanned: number; last_at: string | null; last_id: number | null }>(
      `WITH batch AS (
         SELECT id, received_at FROM inbound_reports
          WHERE received_at < now() - make_interval(days => $1::int)
            AND (received_at, id) > ($2::timestamptz, $3::bigint)
          ORDER BY received_at, id
          LIMIT $4::int
       ), last AS (
         SELECT received_at::text AS at, id FROM batch ORDER BY received_at DESC, id DESC LIMIT 1
       ), gone AS (
         DELETE FROM inbound_reports r
          USING batch b
          WHERE r.id = b.id
            AND CASE WHEN EXISTS (SELECT 1 FROM bounces x WHERE x.report_id = r.id AND x.subscriber_id IS NOT NULL)
                     THEN $5::int > 0 AND r.received_at < now() - make_interval(days => $5::int)
                     ELSE $6::int > 0 AND r.received_at < now() - make_interval(days => $6::int)
                END
         RETURNING r.id
       )
       SELECT (SELECT count(*) FROM gone)::int AS deleted, (SELECT count(*) FROM batch)::int AS scanned,
              (SELECT at FROM last) AS last_at, (SELECT id FROM last) AS last_id`,
      [Math.min(...days), after.at, after.id, scanBatch, policy.matchedDays, policy.unmatchedDays],
    );
    const r = rows[0]!;
    total.deleted += r.deleted;
    total.scanned += r.scanned;
    if (r.scanned < scanBatch || r.last_at === null || r.last_id === null) break;
    after = { at: r.last_at, id: r.last_id };
  }
  return total;
}

/**
 * Prunes the raw inbound reports at the start of a worker and then every hour, on its own timer
 * (a long prune never delays the send supervisor). Every worker runs it; see pruneInboundReports
 * for why that is harmless.
 */
export function startReportRetention(c: Pick<Container, 'pool' | 'config' | 'log' | 'metrics'>, opts: { everyMs?: number } = {}): { close(): Promise<void> } {
  const policy = { matchedDays: c.config.bounceReportRetentionDays, unmatchedDays: c.config.bounceUnmatchedReportRetentionDays };
  let stopping = false;
  let running: Promise<void> | undefined;
  const tick = () => {
    running ??= pruneInboundReports(c.pool, policy, { shouldStop: () => stopping })
      .then((r) => {
        if (r.deleted > 0) {
          c.metrics.inboundReportsPruned(r.deleted);
          c.log.info({ deleted: r.deleted, ...policy }, 'inbound reports past their retention deleted (their bounce rows stay)');
        }
      })
      .catch((err) => c.log.warn({ err: (err as Error).message }, 'pruning inbound reports failed; trying again at the next pass'))
      .finally(() => (running = undefined));
  };
  tick();
  const timer = setInterval(tick, opts.everyMs ?? PRUNE_EVERY_MS);
  timer.unref();
  return {
    async close() {
      stopping = true;
      clearInterval(timer);
      await running;
    },
  };
}
