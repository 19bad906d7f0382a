import { setTimeout as sleep } from 'node:timers/promises';
import type { Container } from '../container.js';

/** What a fan-out touches: Postgres, the deliver queue, its settings and the log. */
type FanoutDeps = Pick<Container, 'pool' | 'queues' | 'config' | 'log'>;
import { describeDatabaseError, isDatabaseUnavailable } from '../db/unavailable.js';
import type { Logger } from '../log.js';
import { deliverJob } from '../queues/contract.js';
import {
  countQueued,
  fanOutBatch,
  finishIfDone,
  findSend,
  hasFedQueued,
  moveFedCursor,
  queuedAfter,
  queuedTouchedWithin,
  refeed,
  startScheduled,
} from './queries.js';

/** Readers given message rows per statement. */
export const FANOUT_BATCH = 10_000;
/** Jobs added per addBulk. */
export const FEED_CHUNK = 1_000;
/** Pause between checks when there is nothing to write or feed. */
const IDLE_MS = 200;
/** Lost jobs are looked for again no sooner than this after feeding them again. */
const REFEED_AFTER_MS = 5_000;
/**
 * How often an idle loop counts the send's queued messages for stall detection (a count over
 * every queued row: at every 200 ms pass it would cost more than it tells, as a stall takes 5 s).
 */
const QUEUED_COUNT_EVERY_MS = 1_000;
/** Waits before a fan-out that lost Postgres tries again: doubling from the first, up to the last. */
const RECONNECT_MS = { first: 500, max: 5000 };

export type FanoutEnd = 'done' | 'paused' | 'cancelled' | 'not_due' | 'gone' | 'busy' | 'stopping';

/**
 * The fan-out of one send, from start to finish, as one long-running job:
 *
 * 1. writes a message row (`queued`) for each reader of the audience, 10,000 per statement,
 *    streaming the list by keyset; the checkpoint moves in the same statement;
 * 2. feeds the deliver queue from the queued rows in id order, keeping at most SEND_WINDOW jobs
 *    waiting, so Redis holds a window that follows the senders, not the whole list;
 * 3. notices jobs that Redis lost (the queue is empty, yet fed messages are still queued) and
 *    feeds them again; job ids make a re-added job that still exists a no-op;
 * 4. marks the send done when nothing is queued or in flight.
 *
 * One fan-out per send runs at a time, by a Postgres advisory lock held for its duration (a
 * process that dies releases it with its connection). Killed anywhere, it is run again by BullMQ's
 * stalled-job check or by the supervisor and continues from its checkpoints. Cut off from
 * Postgres, it waits for it and continues the same way.
 */
export async function runFanout(c: FanoutDeps, sendId: number, stopping: () => boolean, jobLog: Logger = c.log): Promise<FanoutEnd> {
  // Every line of a fan-out names its send (and, from the worker, its job and queue).
  const log = jobLog.child({ sendId });
  // Postgres away (restart, failover, the lock's connection ended): the run waits for it here and
  // carries on from its checkpoints, rather than failing the job into BullMQ's growing backoff,
  // so the send resumes within a few seconds of Postgres's return however long it was gone.
  let wait = RECONNECT_MS.first;
  let waiting = false;
  for (;;) {
    const triedAt = Date.now();
    try {
      const end = await runLocked(c, sendId, stopping, log);
      if (waiting) log.info('fan-out carried on: Postgres is back');
      return end;
    } catch (err) {
      if (!(err instanceof FanoutLockLost) && !isDatabaseUnavailable(err)) throw err;
      if (!waiting) log.warn({ err: describeDatabaseError(err) }, 'fan-out lost Postgres: it waits and carries on from its checkpoints');
      waiting = true;
      // A run that went on for a while before losing Postgres again starts the backoff over.
      wait = Date.now() - triedAt > RECONNECT_MS.max ? RECONNECT_MS.first : wait;
      const until = Date.now() + wait;
      while (Date.now() < until) {
        if (stopping()) return 'stopping';
        await sleep(Math.min(IDLE_MS, until - Date.now()));
      }
      wait = Math.min(wait * 2, RECONNECT_MS.max);
    }
  }
}

/** One run under the send's advisory lock, until the send ends or this process stops. */
async function runLocked(c: FanoutDeps, sendId: number, stopping: () => boolean, log: Logger): Promise<FanoutEnd> {
  const lock = await c.pool.connect();
  // The lock lives as long as its connection. When Postgres ends the connection (restart,
  // failover, pg_terminate_backend) the lock is gone and another fan-out may take it: this run
  // stops at its next step (FanoutLockLost), and runFanout takes the lock again once it can.
  let lost: Error | undefined;
  const onLost = (err: Error) => {
    lost ??= err;
  };
  lock.on('error', onLost);
  try {
    const { rows } = await lock.query<{ ok: boolean }>("SELECT pg_try_advisory_lock(hashtext('broadside:fanout'), $1::int) AS ok", [sendId]);
    if (!rows[0]!.ok) return 'busy';
    let end: FanoutEnd;
    try {
      end = await fanOutAndFeed(c, sendId, () => stopping() || lost !== undefined, log);
    } finally {
      // With its connection gone the lock went too; a failure here must not hide the error
      // that ended the run.
      if (!lost) await lock.query("SELECT pg_advisory_unlock(hashtext('broadside:fanout'), $1::int)", [sendId]).catch(onLost);
    }
    if (lost) throw new FanoutLockLost(lost);
    return end;
  } catch (err) {
    if (!lost && isDatabaseUnavailable(err)) lost = err as Error;
    throw err;
  } finally {
    lock.off('error', onLost);
    // A broken connection is closed, not handed to the next caller.
    lock.release(lost);
  }
}

/** The connection holding a fan-out's advisory lock was lost mid-run (the lock with it). */
class FanoutLockLost extends Error {
  constructor(override readonly cause: Error) {
    super(`the fan-out's lock connection was lost: ${cause.message}`);
  }
}

async function fanOutAndFeed(c: FanoutDeps, sendId: number, stopping: () => boolean, log: Logger): Promise<FanoutEnd> {
  const { pool, queues } = c;
  const window = c.config.sendWindow;
  // Queued messages that stop moving for this long while fed are taken to have lost their jobs,
  // even if Redis still lists ids for them (a partial loss leaves ids without jobs). A message
  // backed off after a refusal waits at most RETRY_DELAY_SECONDS (see the deliver worker), half
  // of this, and is touched each time its job runs: it is seen moving.
  const stallMs = Math.max(REFEED_AFTER_MS, 2 * c.config.retryDelaySeconds * 1000);
  let lastRefeed = 0;
  let queuedSeen = -1;
  let queuedSince = Date.now();
  let countedAt = 0;
  /** When the deliver queue was last seen rate-limited (see below). */
  let rateLimitedAt = 0;
  while (!stopping()) {
    const send = await findSend(pool, sendId);
    if (!send) return 'gone';
    if (send.status === 'scheduled') {
      if (send.scheduled_at.getTime() > Date.now()) return 'not_due';
      const started = await startScheduled(pool, sendId);
      if (started) log.info({ issueId: send.issue_id }, 'scheduled send started');
      continue;
    }
    if (send.status !== 'sending') return send.status === 'done' ? 'done' : send.status;

    let worked = false;
    let fanoutDone = send.fanout_done;
    if (!fanoutDone) {
      const batch = await fanOutBatch(pool, send, FANOUT_BATCH);
      if (batch) {
        worked = true;
        fanoutDone = batch.done;
        if (batch.done) log.info('fan-out complete: every reader of the audience has a message');
      }
    }

    const counts = await queues.deliver.getJobCounts('waiting', 'prioritized', 'delayed', 'active');
    const waiting = counts.waiting! + counts.prioritized! + counts.delayed!;
    const room = window - waiting;
    if (room >= Math.min(FEED_CHUNK, Math.ceil(window / 2))) {
      const next = await queuedAfter(pool, sendId, send.fed_cursor, Math.min(room, FEED_CHUNK));
      if (next.length > 0) {
        await queues.deliver.addBulk(next.map((m) => deliverJob(sendId, m, send.feed_generation)));
        await moveFedCursor(pool, sendId, send.fed_cursor, next[next.length - 1]!.id);
        worked = true;
      }
    }

    if (!worked && fanoutDone) {
      // Done is decided by Postgres alone: a dead worker's jobs may linger in Redis as active.
      if (await finishIfDone(pool, sendId)) {
        log.info({ issueId: send.issue_id }, 'send done');
        return 'done';
      }
      const noJobs = waiting + counts.active! === 0;
      if (noJobs || Date.now() - countedAt >= QUEUED_COUNT_EVERY_MS) {
        countedAt = Date.now();
        const queued = await countQueued(pool, sendId);
        if (queued !== queuedSeen) {
          queuedSeen = queued;
          queuedSince = Date.now();
        }
        // While the relay (or Postgres) is away the workers hold the whole queue back in turns:
        // each sets the rate limit for RETRY_DELAY_SECONDS, and between its end and the next
        // refusal there is a moment without one. Seen once within the stall time is enough.
        if ((await queues.deliver.getRateLimitTtl()) > 0) rateLimitedAt = Date.now();
      }
      let stalled = Date.now() - queuedSince > stallMs;
      if (stalled && (await queuedTouchedWithin(pool, sendId, stallMs / 1000))) {
        // The count stood still, but its messages did not: backed off and tried again.
        stalled = false;
        queuedSince = Date.now();
      }
      if (stalled && Date.now() - rateLimitedAt <= stallMs) {
        // The whole queue waits for the relay or Postgres (a worker set its rate limit within
        // the stall time): the jobs are there, held back, not lost. On a loaded machine its
        // probes may touch no message for longer than the stall time.
        stalled = false;
        queuedSince = Date.now();
      }
      if ((noJobs || stalled) && Date.now() - lastRefeed > Math.max(REFEED_AFTER_MS, stallMs) && (await hasFedQueued(pool, sendId, send.fed_cursor))) {
        // Fed, still queued, and no job working on them: Redis lost them (flushed, restarted
        // without persistence, or left ids without jobs). Feed them again from Postgres under
        // new job ids; the window bounds what this adds, and claims keep any extra job harmless.
        log.warn({ queued: queuedSeen }, 'queued messages have no jobs (Redis lost them?): feeding them again from Postgres');
        lastRefeed = Date.now();
        queuedSince = Date.now();
        await refeed(pool, sendId, send.fed_cursor);
        continue;
      }
    }
    if (!worked) await sleep(IDLE_MS);
  }
  return 'stopping';
}
