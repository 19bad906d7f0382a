// SQL for delivering one message: claim it, then record what the relay said.
import type { Pool } from '../db/pool.js';
import { staleClaim } from '../sending/queries.js';
import type { SubscriberStatus } from '../shared/statuses.js';

export type Claim = {
  id: number;
  send_id: number;
  issue_id: number;
  /** The issue's revision when the message was claimed: which compiled form to send (see Deliverer.prepare). */
  issue_revision: number;
  subscriber_id: number;
  attempts: number;
  /** Null when the reader was erased after the fan-out. */
  email: string | null;
  name: string | null;
  subscriber_status: SubscriberStatus | null;
};

/**
 * Claims messages for sending (queued → sending) in one statement, each only while its send is
 * sending: a paused or cancelled send gets no new submissions. A claim is (message id, attempts):
 * each claim moves `attempts` on. A live worker renews its claims (renewClaims), so a claim
 * older than the sending timeout belongs to a dead worker and may be taken over. The rows are
 * locked in id order first, so two workers' overlapping groups wait for each other, never
 * deadlock. Returns the claims taken; a message missing from them is not ours to send.
 * (ClaimBatcher groups the claims of the deliveries running at once into one such statement.)
 */
export async function claimMessages(pool: Pool, messageIds: number[], timeoutSeconds: number): Promise<Claim[]> {
  // Named, so that each connection can plan it once: it runs for every group of messages. The ids
  // are behind ARRAY(SELECT unnest($1)) so that the planner cannot count them: given the array
  // itself it judged a plan for each group's count cheaper than a reusable one, and planned the
  // statement again at every run, which cost as much of Postgres's CPU as running it
  // (pg_stat_statements during bench:send: 2.7 s of planning against 2.7 s of execution for
  // 20,000 messages). Behind it every group looks alike, and the plan cache keeps one plan. The
  // locks are still taken in id order (ORDER BY … FOR UPDATE), whatever the plan.
  const { rows } = await pool.query<Claim>({
    name: 'claim-messages',
    text: `WITH ${CLAIM_CTES('$1', '$2', 'true')} ${CLAIMS_SELECTED}`,
    values: [messageIds, timeoutSeconds],
  });
  return rows;
}

/**
 * claimMessages and markSubmitted in one statement, so in one transaction and one commit: the
 * submissions the StatusWriter has waiting ride with the next group of claims (see ClaimBatcher).
 * A commit is the dearest part of either (its WAL flush), so two groups for one flush. Both are
 * as durable as alone. A message among both (queued again by recovery while this worker was cut
 * off from Postgres, and its job fed again) is submitted and not claimed: the relay has it, and
 * Postgres cannot update one row twice in one statement.
 * The claims run first (the main query reads them), the submissions once they are done
 * (Postgres runs a data-modifying WITH its query does not read at the end).
 */
export async function claimMessagesRecording(
  pool: Pool,
  messageIds: number[],
  timeoutSeconds: number,
  submitted: { ids: number[]; responses: string[] },
): Promise<Claim[]> {
  const { rows } = await pool.query<Claim>({
    name: 'claim-messages-recording',
    text: `WITH ${SUBMITTED_CTES('$3', '$4')}, ${CLAIM_CTES('$1', '$2', 'm.id <> ALL(ARRAY(SELECT unnest($3::bigint[])))')} ${CLAIMS_SELECTED}`,
    values: [messageIds, timeoutSeconds, submitted.ids, submitted.responses],
  });
  return rows;
}

/** Locks the messages asked for that are free to claim, in id order, then claims those whose send is sending. */
const CLAIM_CTES = (ids: string, timeout: string, also: string) => `
  locked AS (
    SELECT m.id FROM messages m
     WHERE m.id = ANY(ARRAY(SELECT unnest(${ids}::bigint[])))
       AND (m.status = 'queued' OR (m.status = 'sending' AND ${staleClaim('m', timeout)}))
       AND ${also}
     ORDER BY m.id
       FOR UPDATE OF m),
  claimed AS (
    UPDATE messages m SET status = 'sending', claimed_at = now(), attempts = attempts + 1, updated_at = now()
      FROM locked l
     WHERE m.id = l.id
       AND EXISTS (SELECT 1 FROM sends s WHERE s.id = m.send_id AND s.status = 'sending')
     RETURNING m.id, m.send_id, m.subscriber_id, m.attempts)`;

/** What a claim carries (see Claim). */
const CLAIMS_SELECTED = `
  SELECT c.id, c.send_id, s.issue_id, i.revision AS issue_revision, c.subscriber_id, c.attempts, r.email, r.name, r.status AS subscriber_status
    FROM claimed c
    JOIN sends s ON s.id = c.send_id
    JOIN issues i ON i.id = s.issue_id
    LEFT JOIN subscribers r ON r.id = c.subscriber_id`;

/** One message's claim (see claimMessages). */
export async function claimMessage(pool: Pool, messageId: number, timeoutSeconds: number): Promise<Claim | undefined> {
  return (await claimMessages(pool, [messageId], timeoutSeconds))[0];
}

/**
 * Renews claims this process still works on (see ClaimKeeper), so that neither a slow relay nor
 * a long wait for a pooled connection makes them look abandoned. Only the claim itself: a
 * message claimed again since (attempts moved on) or already recorded is left alone.
 */
export async function renewClaims(pool: Pool, claims: readonly Pick<Claim, 'id' | 'attempts'>[]): Promise<void> {
  await pool.query({
    name: 'renew-claims',
    text: `UPDATE messages m SET claimed_at = now()
             FROM unnest($1::bigint[], $2::int[]) AS c(id, attempts)
            WHERE m.id = c.id AND m.attempts = c.attempts AND m.status = 'sending'`,
    values: [claims.map((c) => c.id), claims.map((c) => c.attempts)],
  });
}

/**
 * Submitted, in batches: one statement for many messages (see StatusWriter). The relay accepted
 * each of them, so that is recorded whatever became of the claim meanwhile: a message queued
 * again (or cancelled with its send) because its claim looked abandoned while its worker was
 * cut off from Postgres is `submitted` all the same, and the job fed for it again finds nothing
 * to send. Only an outcome already recorded (submitted, bounced, failed) stays. For the few
 * readers with soft bounces it also moves the soft-bounce probe: when the previous probe (a
 * message submitted after their soft bounces) drew no bounce (soft_bounce_probe_went_through,
 * migration 0008), mail gets through to them again and the soft bounces are forgotten; else this
 * message becomes the probe. (Behind a relay a 250 says
 * nothing about the reader's mailbox, and their soft bounces arrive later as DSNs.)
 */
export async function markSubmitted(pool: Pool, ids: number[], responses: string[]): Promise<void> {
  await pool.query({
    name: 'mark-submitted',
    text: `WITH ${SUBMITTED_CTES('$1', '$2')} SELECT 1`,
    values: [ids, responses],
  });
}

/**
 * Records the submissions (see markSubmitted) and moves the soft-bounce probes, as WITH queries
 * (`submitted`, `probed`). The rows are locked first, in id order, as the claims lock theirs:
 * whatever plan Postgres picks, two statements meet their rows in one order; locked, their
 * status (checked as they are locked) stays what it was for the update.
 * The arrays are hidden from the planner (`(SELECT …)`): where it can
 * see a group's size, a group of one or two looks cheaper planned afresh than the generic plan,
 * and each connection then plans the statement at every run (~1.4 ms of a backend's CPU, more
 * than running it). Hidden, the generic plan is kept after the first five
 * (test/delivery/claim-plans.test.ts).
 */
const SUBMITTED_CTES = (ids: string, responses: string) => `
  to_submit AS (
    SELECT m.id, u.response FROM messages m
      JOIN unnest((SELECT ${ids}::bigint[]), (SELECT ${responses}::text[])) AS u(id, response) ON m.id = u.id
     WHERE m.status IN ('sending', 'queued', 'cancelled')
     ORDER BY m.id
       FOR UPDATE OF m),
  submitted AS (
    UPDATE messages m SET status = 'submitted', submitted_at = now(), updated_at = now(), smtp_response = l.response, in_doubt = false
      FROM to_submit l
     WHERE m.id = l.id
     RETURNING m.id, m.subscriber_id),
  went_through AS (
    SELECT s.id, m.id AS message_id, soft_bounce_probe_went_through(s.soft_bounce_probe) AS reset
      FROM submitted m JOIN subscribers s ON s.id = m.subscriber_id AND s.soft_bounces IS NOT NULL),
  probed AS (
    UPDATE subscribers s
       SET soft_bounces = CASE WHEN w.reset THEN NULL ELSE s.soft_bounces END,
           soft_bounce_probe = CASE WHEN w.reset THEN NULL ELSE w.message_id END
      FROM went_through w WHERE s.id = w.id)`;

/**
 * Gives a claim back after a temporary failure (or with the relay unavailable): queued, for the
 * retry to claim again; or cancelled, when its send was cancelled meanwhile (the cancel marked
 * only what was queued then, and nothing would ever take this message again). The send's row is
 * locked (FOR SHARE) so that a cancel committing meanwhile is seen: without it, this statement
 * could read `sending`, and the cancel's own sweep miss the row it queues.
 */
export async function releaseMessage(pool: Pool, id: number, response: string | null): Promise<void> {
  await pool.query(
    `WITH send AS (SELECT s.status FROM sends s JOIN messages m ON m.send_id = s.id WHERE m.id = $1::bigint FOR SHARE OF s)
     UPDATE messages
        SET status = CASE WHEN (SELECT status FROM send) = 'cancelled' THEN 'cancelled' ELSE 'queued' END::message_status,
            claimed_at = NULL, updated_at = now(), smtp_response = COALESCE($2::text, smtp_response)
      WHERE id = $1::bigint AND status = 'sending'`,
    [id, response],
  );
}

/** The reader left (or was erased) between the fan-out and their turn: nothing to send. */
export async function markCancelled(pool: Pool, id: number): Promise<void> {
  await pool.query(`UPDATE messages SET status = 'cancelled', updated_at = now() WHERE id = $1::bigint AND status = 'sending'`, [id]);
}

/**
 * Failed without a bounce: the message cannot go through this relay at all (see
 * SmtpUtf8Unavailable), which says nothing about the reader's mailbox.
 */
export async function markFailed(pool: Pool, id: number, reason: string): Promise<void> {
  await pool.query(
    `UPDATE messages SET status = 'failed', claimed_at = NULL, updated_at = now(), smtp_response = $2::text
      WHERE id = $1::bigint AND status = 'sending'`,
    [id, reason],
  );
}
