// SQL for sends and messages. Every state change is one statement guarded by the state it
// expects, so two workers (or a worker and a retried request) can never both win.
import type { Pool } from '../db/pool.js';
import type { MessageStatus, SendStatus } from '../shared/statuses.js';

/** A pool or one of its clients (inside a transaction): what a single statement needs. */
export type Queryable = Pick<Pool, 'query'>;

export type SendRow = {
  id: number;
  issue_id: number;
  status: SendStatus;
  scheduled_at: Date;
  audience_at: Date | null;
  started_at: Date | null;
  finished_at: Date | null;
  created_at: Date;
  updated_at: Date;
  fanout_cursor: number;
  fanout_done: boolean;
  fed_cursor: number;
  feed_generation: number;
  total: number;
  rate_alert_at: Date | null;
  rate_alert: string | null;
  rate_alert_waived: boolean;
  /** This send's start published the issue (it was a draft until then). */
  published_issue: boolean;
};

/**
 * Creates the issue's one send. Started at once (and the issue published) unless `scheduledAt`
 * is in the future. A second trigger finds the first send and changes nothing: `created` false.
 * The issue row is locked, so that a publish racing the start cannot make `published_issue` lie.
 */
export async function createSend(pool: Pool, issueId: number, scheduledAt: Date | null): Promise<{ send: SendRow; created: boolean } | undefined> {
  const { rows } = await pool.query<SendRow & { created: boolean }>(
    `WITH issue AS (SELECT id, published_at IS NULL AS draft FROM issues WHERE id = $1::bigint FOR UPDATE),
          at AS (SELECT GREATEST(now(), COALESCE($2::timestamptz, now())) AS t),
          ins AS (
            INSERT INTO sends (issue_id, status, scheduled_at, audience_at, started_at, published_issue)
            SELECT issue.id,
                   CASE WHEN at.t > now() THEN 'scheduled' ELSE 'sending' END::send_status,
                   at.t,
                   CASE WHEN at.t > now() THEN NULL ELSE now() END,
                   CASE WHEN at.t > now() THEN NULL ELSE now() END,
                   at.t <= now() AND issue.draft
              FROM issue, at
            ON CONFLICT (issue_id) DO NOTHING
            RETURNING *),
          published AS (
            UPDATE issues SET published_at = now(), updated_at = now()
             WHERE id IN (SELECT issue_id FROM ins WHERE status = 'sending') AND published_at IS NULL)
     SELECT ins.*, true AS created FROM ins
     UNION ALL
     SELECT sends.*, false AS created FROM sends WHERE issue_id = $1::bigint AND NOT EXISTS (SELECT 1 FROM ins)`,
    [issueId, scheduledAt],
  );
  const row = rows[0];
  if (!row) {
    // Lost a race with a concurrent first trigger: the statement's snapshot predates the winner's
    // commit, so read again with a fresh one.
    const existing = await findSendOfIssue(pool, issueId);
    return existing ? { send: existing, created: false } : undefined;
  }
  const { created, ...send } = row;
  return { send, created };
}

export async function findSend(pool: Pool, id: number): Promise<SendRow | undefined> {
  const { rows } = await pool.query<SendRow>('SELECT * FROM sends WHERE id = $1::bigint', [id]);
  return rows[0];
}

export async function findSendOfIssue(pool: Pool, issueId: number): Promise<SendRow | undefined> {
  const { rows } = await pool.query<SendRow>('SELECT * FROM sends WHERE issue_id = $1::bigint', [issueId]);
  return rows[0];
}

/**
 * A scheduled send whose time has come starts, once; its issue is published with it. Guarded by
 * the row's status and time: an unschedule (DELETE … WHERE status = 'scheduled') or a reschedule
 * committed first leaves nothing to start; one that waits for this row lock finds it started.
 * (No publish can race it: publishing is refused while the issue has a send.)
 */
export async function startScheduled(pool: Queryable, id: number): Promise<SendRow | undefined> {
  const { rows } = await pool.query<SendRow>(
    `WITH started AS (
       UPDATE sends SET status = 'sending', started_at = now(), audience_at = now(), updated_at = now(),
                        published_issue = (SELECT published_at IS NULL FROM issues WHERE issues.id = sends.issue_id)
        WHERE id = $1::bigint AND status = 'scheduled' AND scheduled_at <= now()
        RETURNING *),
     published AS (
       UPDATE issues SET published_at = now(), updated_at = now()
        WHERE id IN (SELECT issue_id FROM started) AND published_at IS NULL)
     SELECT * FROM started`,
    [id],
  );
  return rows[0];
}

/**
 * One step of the fan-out: message rows for the next `batch` readers of the audience (active,
 * and confirmed before the send started), and the checkpoint moved past them, in the same
 * statement. Killed before it commits, nothing happened; after, the work is recorded. The
 * compare on `fanout_cursor` makes a second fan-out of the same send a no-op.
 */
export async function fanOutBatch(
  pool: Pool,
  send: Pick<SendRow, 'id' | 'fanout_cursor'>,
  batch: number,
): Promise<{ inserted: number; done: boolean } | undefined> {
  const { rows } = await pool.query<{ inserted: number; fanout_done: boolean }>(
    // FOR UPDATE: a pause or cancel waits for this batch, and this batch sees theirs.
    `WITH s AS (SELECT audience_at FROM sends
                 WHERE id = $1::bigint AND status = 'sending' AND fanout_cursor = $2::bigint AND NOT fanout_done
                 FOR UPDATE),
          readers AS (
            SELECT sub.id FROM subscribers sub, s
             WHERE sub.status = 'active' AND sub.id > $2::bigint AND sub.confirmed_at <= s.audience_at
             ORDER BY sub.id
             LIMIT $3::int),
          ins AS (
            INSERT INTO messages (send_id, subscriber_id)
            SELECT $1::bigint, id FROM readers ORDER BY id
            ON CONFLICT (send_id, subscriber_id) DO NOTHING
            RETURNING 1),
          n AS (SELECT count(*)::int AS inserted FROM ins),
          r AS (SELECT count(*)::int AS taken, max(id) AS last FROM readers)
     UPDATE sends SET fanout_cursor = COALESCE(r.last, fanout_cursor),
                      fanout_done = r.taken < $3::int,
                      total = total + n.inserted,
                      updated_at = now()
       FROM n, r
      WHERE sends.id = $1::bigint AND sends.fanout_cursor = $2::bigint AND EXISTS (SELECT 1 FROM s)
      RETURNING n.inserted, sends.fanout_done`,
    [send.id, send.fanout_cursor, batch],
  );
  const row = rows[0];
  return row ? { inserted: row.inserted, done: row.fanout_done } : undefined;
}

export type ToFeed = { id: number; attempts: number };

/** The next queued messages after the feeding checkpoint, in id order. */
export async function queuedAfter(pool: Pool, sendId: number, afterId: number, limit: number): Promise<ToFeed[]> {
  const { rows } = await pool.query<ToFeed>(
    `SELECT id, attempts FROM messages
      WHERE send_id = $1::bigint AND status = 'queued' AND id > $2::bigint
      ORDER BY id LIMIT $3::int`,
    [sendId, afterId, limit],
  );
  return rows;
}

/** Moves the feeding checkpoint, unless someone lowered it meanwhile (then the feeder re-reads). */
export async function moveFedCursor(pool: Pool, sendId: number, from: number, to: number): Promise<boolean> {
  const { rowCount } = await pool.query('UPDATE sends SET fed_cursor = $3::bigint WHERE id = $1::bigint AND fed_cursor = $2::bigint', [sendId, from, to]);
  return rowCount === 1;
}

/** Feeds everything queued again from the start, under a new generation of job ids. */
export async function refeed(pool: Pool, sendId: number, from: number): Promise<boolean> {
  const { rowCount } = await pool.query(
    'UPDATE sends SET fed_cursor = 0, feed_generation = feed_generation + 1 WHERE id = $1::bigint AND fed_cursor = $2::bigint',
    [sendId, from],
  );
  return rowCount === 1;
}

export async function countQueued(pool: Pool, sendId: number): Promise<number> {
  const { rows } = await pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM messages WHERE send_id = $1::bigint AND status = 'queued'`, [sendId]);
  return rows[0]!.n;
}

/**
 * Whether a queued message of the send changed within the last `seconds`: a message backed off
 * after a refusal (released to queued, its job delayed) is touched again each time its job runs,
 * so queued messages that are touched are moving, however steady their count.
 */
export async function queuedTouchedWithin(pool: Pool, sendId: number, seconds: number): Promise<boolean> {
  const { rows } = await pool.query(
    `SELECT 1 FROM messages WHERE send_id = $1::bigint AND status = 'queued' AND updated_at > now() - make_interval(secs => $2::float8) LIMIT 1`,
    [sendId, seconds],
  );
  return rows.length > 0;
}

/** Whether queued messages exist at or before the feeding checkpoint (fed, yet still queued). */
export async function hasFedQueued(pool: Pool, sendId: number, fedCursor: number): Promise<boolean> {
  const { rows } = await pool.query(`SELECT 1 FROM messages WHERE send_id = $1::bigint AND status = 'queued' AND id <= $2::bigint LIMIT 1`, [
    sendId,
    fedCursor,
  ]);
  return rows.length > 0;
}

/**
 * A send with nothing queued or in flight and its fan-out complete is done. The send's row is
 * locked first, and the check runs in a second statement with a fresh snapshot: a retry of
 * failed messages (retryFailed) that committed while this waited for the lock is seen, so its
 * messages, queued again, never sit in a send marked done.
 */
export async function finishIfDone(pool: Pool, sendId: number): Promise<boolean> {
  // While messages are still to go (every idle pass of a send's tail), one cheap read says no.
  const { rows: busy } = await pool.query(`SELECT 1 FROM messages WHERE send_id = $1::bigint AND status IN ('queued', 'sending') LIMIT 1`, [sendId]);
  if (busy.length > 0) return false;
  return inTransaction(pool, async (client) => {
    const { rows } = await client.query(`SELECT 1 FROM sends WHERE id = $1::bigint AND status = 'sending' AND fanout_done FOR UPDATE`, [sendId]);
    if (rows.length === 0) return false;
    const { rowCount } = await client.query(
      `UPDATE sends SET status = 'done', finished_at = now(), updated_at = now()
        WHERE id = $1::bigint AND status = 'sending' AND fanout_done
          AND NOT EXISTS (SELECT 1 FROM messages WHERE send_id = $1::bigint AND status IN ('queued', 'sending'))`,
      [sendId],
    );
    return rowCount === 1;
  });
}

/** Runs `fn` in one transaction on one client of the pool: committed if it returns, rolled back if it throws. */
async function inTransaction<T>(pool: Pool, fn: (client: Queryable) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    const result = await fn(client);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}

export async function unfinishedSends(pool: Pool): Promise<SendRow[]> {
  const { rows } = await pool.query<SendRow>(`SELECT * FROM sends WHERE status IN ('scheduled', 'sending') ORDER BY id`);
  return rows;
}

/**
 * SQL for "the claim on message row `alias` is abandoned": nobody renewed it for `seconds` (a
 * parameter such as '$1'). A live worker renews its claims every few seconds (ClaimKeeper), so
 * this means its worker is gone, or cut off from Postgres for that long.
 *
 * Counted from the later of the last renewal and the Postgres server's start: while the server
 * was down nobody could renew anything, so after a restart every live worker gets a whole
 * timeout to renew its claims before they look abandoned. (Not covered: a failover to a standby
 * that started long before, or a network cut, longer than the timeout: there, live claims look
 * abandoned and the messages they hold may be sent twice.) Two comparisons rather than
 * GREATEST(), so the index on claimed_at still serves.
 */
export function staleClaim(alias: string, seconds: string): string {
  return `(${alias}.claimed_at < now() - make_interval(secs => ${seconds}::int) AND pg_postmaster_start_time() < now() - make_interval(secs => ${seconds}::int))`;
}

export type Recovered = { send_id: number; recovered: number; in_doubt: number };

/**
 * Claims that outlived their worker (killed, or cut off from Postgres: see staleClaim) are
 * given up. In a send still going (or paused), the message goes back to queued and the feeding
 * checkpoint drops below it so its job is added again: the duplicate risk is exactly these
 * messages, as their worker may have submitted them. In a cancelled send nothing will take it
 * again: it becomes cancelled and `in_doubt` (the relay may have it). The sends are locked FOR
 * SHARE so that a cancel committing meanwhile is seen, not raced (see releaseMessage).
 */
export async function recoverStuck(pool: Pool, timeoutSeconds: number): Promise<Recovered[]> {
  const { rows } = await pool.query<Recovered>(
    `WITH send AS (
       SELECT id, status FROM sends
        WHERE id IN (SELECT send_id FROM messages m WHERE m.status = 'sending' AND ${staleClaim('m', '$1')})
        ORDER BY id
          FOR SHARE),
     stuck AS (
       UPDATE messages m
          SET status = CASE WHEN send.status = 'cancelled' THEN 'cancelled' ELSE 'queued' END::message_status,
              in_doubt = send.status = 'cancelled', claimed_at = NULL, updated_at = now()
         FROM send
        WHERE m.send_id = send.id AND m.status = 'sending' AND ${staleClaim('m', '$1')}
        RETURNING m.send_id, m.id, m.status),
     per_send AS (
       SELECT send_id, min(id) FILTER (WHERE status = 'queued') AS first, count(*)::int AS recovered,
              count(*) FILTER (WHERE status = 'cancelled')::int AS in_doubt
         FROM stuck GROUP BY send_id),
     refeed AS (
       UPDATE sends SET fed_cursor = LEAST(sends.fed_cursor, per_send.first - 1)
         FROM per_send WHERE sends.id = per_send.send_id AND per_send.first IS NOT NULL)
     SELECT send_id, recovered, in_doubt FROM per_send ORDER BY send_id`,
    [timeoutSeconds],
  );
  return rows;
}

export type Progress = Record<MessageStatus, number> & {
  lastMinute: number;
  /** Cancelled messages whose worker died while submitting them: the relay may have them. */
  inDoubt: number;
  /** Readers of the send who complained about it. */
  complaints: number;
  /** Soft bounces recorded against the send's messages (at submission, by DSN or by a provider). */
  softBounces: number;
};

/**
 * Counts straight from the message rows, the submissions of the last minute for the rate, and
 * the complaints and soft bounces recorded against the send.
 */
export async function progressOf(pool: Pool, sendId: number): Promise<Progress> {
  const { rows } = await pool.query<{ what: string; n: number }>(
    `SELECT status::text AS what, count(*)::int AS n FROM messages WHERE send_id = $1::bigint GROUP BY status
     UNION ALL
     SELECT 'lastMinute', count(*)::int FROM messages
      WHERE send_id = $1::bigint AND status = 'submitted' AND submitted_at > now() - interval '60 seconds'
     UNION ALL
     SELECT 'inDoubt', count(*)::int FROM messages WHERE send_id = $1::bigint AND in_doubt
     UNION ALL
     SELECT 'complaints', count(DISTINCT subscriber_id)::int FROM bounces WHERE send_id = $1::bigint AND type = 'complaint'
     UNION ALL
     SELECT 'softBounces', count(*)::int FROM bounces WHERE send_id = $1::bigint AND type = 'soft'`,
    [sendId],
  );
  const p = { queued: 0, sending: 0, submitted: 0, failed: 0, bounced: 0, cancelled: 0, lastMinute: 0, inDoubt: 0, complaints: 0, softBounces: 0 } as Progress;
  for (const r of rows) p[r.what as keyof Progress] = r.n;
  return p;
}

/**
 * Raises a send's rate alert, once: records why and, when `pause` is set and the editor has not
 * already chosen to go on, pauses it in the same statement. Undefined when the alert was raised
 * before (or the send is gone).
 */
export async function raiseRateAlert(pool: Pool, id: number, alert: string, pause: boolean): Promise<SendRow | undefined> {
  const { rows } = await pool.query<SendRow>(
    `UPDATE sends SET rate_alert = $2::text, rate_alert_at = now(), updated_at = now(),
            status = CASE WHEN $3::boolean AND status = 'sending' THEN 'paused'::send_status ELSE status END
      WHERE id = $1::bigint AND rate_alert IS NULL
     RETURNING *`,
    [id, alert, pause],
  );
  return rows[0];
}

export async function pauseSend(pool: Pool, id: number): Promise<SendRow | undefined> {
  const { rows } = await pool.query<SendRow>(
    `UPDATE sends SET status = 'paused', updated_at = now() WHERE id = $1::bigint AND status = 'sending' RETURNING *`,
    [id],
  );
  return rows[0];
}

/**
 * Resumes a paused send; its queued messages are fed again from the start. A job of the paused
 * feed that still waits only finds its message claimed or already sent. Resuming after a rate
 * alert is the editor's decision to go on, recorded as waived (the alert is raised only once).
 */
export async function resumeSend(pool: Pool, id: number): Promise<SendRow | undefined> {
  const { rows } = await pool.query<SendRow>(
    `UPDATE sends SET status = 'sending', fed_cursor = 0, feed_generation = feed_generation + 1, updated_at = now(),
            rate_alert_waived = rate_alert IS NOT NULL
      WHERE id = $1::bigint AND status = 'paused' RETURNING *`,
    [id],
  );
  return rows[0];
}

/**
 * Cancels a send and marks every message not yet claimed `cancelled`. Statements in one
 * transaction: the second, with a fresh snapshot, also sees rows a fan-out batch committed while
 * the first waited for its lock. A send that then has mailed nobody (see forgetUnmailed) is
 * forgotten in the same transaction: its issue is a draft again. `forgotten` says which.
 */
export async function cancelSend(pool: Pool, id: number): Promise<{ send: SendRow; forgotten: boolean } | undefined> {
  return inTransaction(pool, async (client) => {
    const { rows } = await client.query<SendRow>(
      `UPDATE sends SET status = 'cancelled', finished_at = now(), updated_at = now()
        WHERE id = $1::bigint AND status IN ('scheduled', 'sending', 'paused')
        RETURNING *`,
      [id],
    );
    if (!rows[0]) return undefined;
    await client.query(`UPDATE messages SET status = 'cancelled', updated_at = now() WHERE send_id = $1::bigint AND status = 'queued'`, [id]);
    const forgotten = await forgetUnmailed(client, id);
    return { send: rows[0], forgotten: forgotten.length > 0 };
  });
}

/**
 * Forgets cancelled sends that mailed nobody (all of them when `id` is null): every message is
 * `cancelled` and none is in doubt, so none was submitted, bounced, failed or possibly taken by
 * the relay. The messages and the send are deleted and, when the send's start published the
 * issue, the issue is a draft again; one statement, guarded by the send's status under its row
 * lock. A message still in flight (`sending`) keeps its send until it settles (the supervisor
 * calls this again). Returns the issues left without a send.
 */
export async function forgetUnmailed(db: Queryable, id: number | null): Promise<{ issue_id: number; send_id: number }[]> {
  const { rows } = await db.query<{ issue_id: number; send_id: number }>(
    `WITH s AS (
       SELECT id, issue_id FROM sends
        WHERE status = 'cancelled' AND ($1::bigint IS NULL OR id = $1::bigint)
          AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.send_id = sends.id AND (m.status <> 'cancelled' OR m.in_doubt))
        FOR UPDATE),
     gone_messages AS (DELETE FROM messages WHERE send_id IN (SELECT id FROM s)),
     gone AS (DELETE FROM sends WHERE id IN (SELECT id FROM s) AND status = 'cancelled' RETURNING id, issue_id, published_issue),
     draft AS (UPDATE issues SET published_at = NULL, updated_at = now() WHERE id IN (SELECT issue_id FROM gone WHERE published_issue))
     SELECT issue_id, id AS send_id FROM gone`,
    [id],
  );
  return rows;
}

/**
 * Moves a scheduled send to another time. Guarded by the status under the row lock: once the
 * send has started (startScheduled committed first) nothing changes.
 */
export async function rescheduleSend(pool: Pool, issueId: number, at: Date): Promise<SendRow | undefined> {
  const { rows } = await pool.query<SendRow>(
    `UPDATE sends SET scheduled_at = $2::timestamptz, updated_at = now() WHERE issue_id = $1::bigint AND status = 'scheduled' RETURNING *`,
    [issueId, at],
  );
  return rows[0];
}

/**
 * Takes a scheduled send back: the row is deleted and the issue is a draft again (a scheduled
 * send has no messages and never published its issue). Against startScheduled, the row lock
 * decides: whichever commits first wins, and the other finds nothing to do.
 */
export async function unscheduleSend(pool: Queryable, issueId: number): Promise<SendRow | undefined> {
  const { rows } = await pool.query<SendRow>(`DELETE FROM sends WHERE issue_id = $1::bigint AND status = 'scheduled' RETURNING *`, [issueId]);
  return rows[0];
}

/**
 * A new send to the readers a cancelled send did not reach, as the same send row: it is sending
 * again, its audience taken now, the fan-out run again from the start. Its cancelled messages
 * that are not in doubt are deleted, so the fan-out writes them again (`queued`) for readers
 * still active; everyone with a message left (submitted, bounced, failed, in doubt, or still in
 * flight) keeps it, and the fan-out's ON CONFLICT (send_id, subscriber_id) DO NOTHING never gives
 * them a second one. `total` drops by the rows deleted and grows by the rows written again.
 * Statements in one transaction, the send's row locked first: a message given back as cancelled
 * after the cancel (releaseMessage, which holds the row FOR SHARE) commits before the delete
 * runs, and the delete's fresh snapshot sees it, so that reader is not left out.
 */
export async function reopenSend(pool: Pool, id: number): Promise<SendRow | undefined> {
  return inTransaction(pool, async (client) => {
    const { rows } = await client.query<SendRow>(`SELECT * FROM sends WHERE id = $1::bigint AND status = 'cancelled' FOR UPDATE`, [id]);
    if (!rows[0]) return undefined;
    const { rowCount } = await client.query(`DELETE FROM messages WHERE send_id = $1::bigint AND status = 'cancelled' AND NOT in_doubt`, [id]);
    const reopened = await client.query<SendRow>(
      `UPDATE sends SET status = 'sending', audience_at = now(), finished_at = NULL, updated_at = now(),
                        fanout_cursor = 0, fanout_done = false, fed_cursor = 0, feed_generation = feed_generation + 1,
                        total = total - $2::int
        WHERE id = $1::bigint AND status = 'cancelled'
        RETURNING *`,
      [id, rowCount ?? 0],
    );
    return reopened.rows[0];
  });
}

/**
 * The send's failed messages whose readers are still active go back to `queued`, one statement
 * under the send's row lock. A done send is sending again; the feeding checkpoint drops below the
 * first of them, so the feeder adds their jobs (a paused send keeps them queued until it is
 * resumed, which feeds from the start). `attempts` keeps counting: it is the message's history,
 * each new job has its own retries, and the job id (which holds the attempts at feeding) is one
 * no job of the message had before. Undefined when the send is not in a state that can retry
 * (scheduled, cancelled) or is gone.
 */
export async function retryFailed(pool: Queryable, sendId: number): Promise<{ send: SendRow; queued: number } | undefined> {
  const { rows } = await pool.query<SendRow & { queued_again: number }>(
    `WITH s AS (SELECT id FROM sends WHERE id = $1::bigint AND status IN ('sending', 'paused', 'done') FOR UPDATE),
     again AS (
       UPDATE messages m SET status = 'queued', claimed_at = NULL, updated_at = now()
         FROM s, subscribers r
        WHERE m.send_id = s.id AND m.status = 'failed' AND r.id = m.subscriber_id AND r.status = 'active'
        RETURNING m.id),
     n AS (SELECT count(*)::int AS queued_again, min(id) AS first FROM again)
     UPDATE sends SET status = CASE WHEN n.queued_again > 0 AND status = 'done' THEN 'sending'::send_status ELSE status END,
                      finished_at = CASE WHEN n.queued_again > 0 AND status = 'done' THEN NULL ELSE finished_at END,
                      fed_cursor = LEAST(fed_cursor, COALESCE(n.first - 1, fed_cursor)),
                      updated_at = now()
       FROM n
      WHERE sends.id IN (SELECT id FROM s)
      RETURNING sends.*, n.queued_again`,
    [sendId],
  );
  const row = rows[0];
  if (!row) return undefined;
  const { queued_again, ...send } = row;
  return { send, queued: queued_again };
}

/**
 * Readers a send of the issue would mail if it started now: active and confirmed, and without a
 * message of the issue's send that counts as theirs (submitted, bounced, failed, in doubt, or
 * still to go). For a draft or a scheduled send that is the fan-out's audience rule as of now;
 * after a cancelled send, the readers a new send (reopenSend) would reach.
 */
export async function audienceOf(pool: Pool, issueId: number): Promise<number> {
  const { rows } = await pool.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM subscribers r
      WHERE r.status = 'active' AND r.confirmed_at <= now()
        AND NOT EXISTS (SELECT 1 FROM messages m JOIN sends s ON s.id = m.send_id
                         WHERE s.issue_id = $1::bigint AND m.subscriber_id = r.id AND (m.status <> 'cancelled' OR m.in_doubt))`,
    [issueId],
  );
  return rows[0]!.n;
}

export type MessageListRow = {
  id: number;
  subscriber_id: number;
  email: string | null;
  status: MessageStatus;
  in_doubt: boolean;
  attempts: number;
  smtp_response: string | null;
  submitted_at: Date | null;
  updated_at: Date;
};

/** One page of a send's messages in id order, optionally of one status, with each reader's address (null once erased). */
export async function listMessages(pool: Pool, o: { sendId: number; status?: MessageStatus; afterId?: number; limit: number }): Promise<MessageListRow[]> {
  const { rows } = await pool.query<MessageListRow>(
    `SELECT m.id, m.subscriber_id, r.email, m.status, m.in_doubt, m.attempts, m.smtp_response, m.submitted_at, m.updated_at
       FROM messages m LEFT JOIN subscribers r ON r.id = m.subscriber_id
      WHERE m.send_id = $1::bigint AND ($2::message_status IS NULL OR m.status = $2::message_status) AND m.id > $3::bigint
      ORDER BY m.id LIMIT $4::int`,
    [o.sendId, o.status ?? null, o.afterId ?? 0, o.limit],
  );
  return rows;
}

export async function findIssueExists(pool: Pool, issueId: number): Promise<boolean> {
  const { rows } = await pool.query('SELECT 1 FROM issues WHERE id = $1::bigint', [issueId]);
  return rows.length > 0;
}
