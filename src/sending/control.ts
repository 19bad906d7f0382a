import type { Container } from '../container.js';
import type { LogLines } from '../log.js';

/** What controlling a send touches: Postgres, the fan-out queue, the log. */
type SendControlDeps = Pick<Container, 'pool' | 'queues' | 'log'>;
import { AppError, conflict, notFound } from '../errors.js';
import { fanoutJobId } from '../queues/contract.js';
import {
  audienceOf,
  cancelSend,
  createSend,
  findIssueExists,
  findSendOfIssue,
  pauseSend,
  reopenSend,
  rescheduleSend,
  resumeSend,
  retryFailed as retryFailedMessages,
  unscheduleSend,
  type SendRow,
} from './queries.js';
import { ensureFanoutJob } from './supervisor.js';

export type TriggerOptions = {
  /** Start at this time instead of now; it must be in the future. */
  scheduledAt?: Date;
  /** The audience the editor was shown; a send to a number that moved further is refused (see audienceMoved). */
  expectAudience?: number;
};

/** `at` must be a future time: a mistyped year must not start a send at once. */
export function assertFuture(at: Date, field = 'scheduledAt'): void {
  const now = new Date();
  if (at.getTime() <= now.getTime()) {
    throw new AppError(400, 'scheduled_in_past', `${field} ${at.toISOString()} is in the past: it is now ${now.toISOString()} (UTC); give a time after now`, {
      field,
      scheduledAt: at.toISOString(),
      now: now.toISOString(),
    });
  }
}

/**
 * Whether the audience moved too far from what the editor was shown: by more than 10 readers and
 * by more than 1 % of the audience now (so max(10, 1 %)), either way.
 */
export function audienceMoved(expected: number, now: number): boolean {
  return Math.abs(now - expected) > Math.max(10, now / 100);
}

async function checkAudience(c: SendControlDeps, issueId: number, expected: number | undefined): Promise<void> {
  if (expected === undefined) return;
  const audience = await audienceOf(c.pool, issueId);
  if (audienceMoved(expected, audience)) {
    throw new AppError(409, 'audience_changed', `the audience is now ${audience} readers, not ${expected}: confirm the new number and send again`, {
      audience,
    });
  }
}

/**
 * Triggers the issue's one send, now or at `scheduledAt`. A second trigger returns the send
 * untouched, except after a cancel: a cancelled send is sent again, to the readers it did not
 * reach (see reopenSend), and only now. If Redis is away when the job would be added, the send is
 * still recorded and the supervisor adds its job as soon as it can: the trigger is never lost.
 */
export async function triggerSend(
  c: SendControlDeps,
  issueId: number,
  opts: TriggerOptions = {},
  log: LogLines = c.log,
): Promise<{ send: SendRow; created: boolean }> {
  const { scheduledAt } = opts;
  if (scheduledAt) assertFuture(scheduledAt);
  let existing = await findSendOfIssue(c.pool, issueId);
  if (existing?.status === 'cancelled') {
    if (scheduledAt) {
      throw conflict('follow_up_now_only', 'the send was cancelled after it reached some readers: a new send to the others starts now; leave out scheduledAt');
    }
    await checkAudience(c, issueId, opts.expectAudience);
    const reopened = await reopenSend(c.pool, existing.id);
    if (reopened) {
      log.info({ issueId, sendId: reopened.id }, 'cancelled send sent again, to the readers it did not reach');
      await addFanoutJob(c, reopened, log);
      return { send: reopened, created: true };
    }
    // Lost a race: another trigger reopened it (that send is the answer), or the supervisor forgot
    // it because it mailed nobody (then this is a first send, created below).
    existing = await findSendOfIssue(c.pool, issueId);
  }
  if (existing) return { send: existing, created: false };
  await checkAudience(c, issueId, opts.expectAudience);
  const result = await createSend(c.pool, issueId, scheduledAt ?? null);
  if (!result) throw notFound('issue');
  if (result.created) {
    log.info({ issueId, sendId: result.send.id, status: result.send.status, scheduledAt: result.send.scheduled_at }, 'send triggered');
    await addFanoutJob(c, result.send, log);
  }
  return result;
}

/** Redis away: the send is recorded all the same, and the supervisor adds its job as soon as it can. */
async function addFanoutJob(c: SendControlDeps, send: SendRow, log: LogLines): Promise<void> {
  await ensureFanoutJob(c, send).catch((err) => {
    log.warn({ sendId: send.id, err: (err as Error).message }, 'could not add the fan-out job now; the supervisor will');
  });
}

async function sendOf(c: SendControlDeps, issueId: number): Promise<SendRow> {
  const send = await findSendOfIssue(c.pool, issueId);
  if (send) return send;
  if (!(await findIssueExists(c.pool, issueId))) throw notFound('issue');
  throw notFound('send');
}

/** Stops new submissions: workers claim nothing more from a paused send (messages stay queued). */
export async function pause(c: SendControlDeps, issueId: number, log: LogLines = c.log): Promise<SendRow> {
  const send = await sendOf(c, issueId);
  const paused = await pauseSend(c.pool, send.id);
  if (!paused) throw conflict('not_sending', `the send is ${send.status}; only a send in progress can be paused`);
  log.info({ issueId, sendId: send.id }, 'send paused');
  return paused;
}

/** Continues a paused send: its queued messages are fed again, none sent twice. */
export async function resume(c: SendControlDeps, issueId: number, log: LogLines = c.log): Promise<SendRow> {
  const send = await sendOf(c, issueId);
  const resumed = await resumeSend(c.pool, send.id);
  if (!resumed) throw conflict('not_paused', `the send is ${send.status}; only a paused send can be resumed`);
  log.info({ issueId, sendId: send.id }, 'send resumed');
  await addFanoutJob(c, resumed, log);
  return resumed;
}

/**
 * Ends a send: whatever is still queued is marked cancelled; messages in flight finish. A send
 * that mailed nobody (a scheduled one, or one cancelled before any submission) is forgotten and
 * its issue is a draft again: `forgotten` is then true.
 */
export async function cancel(c: SendControlDeps, issueId: number, log: LogLines = c.log): Promise<{ send: SendRow; forgotten: boolean }> {
  const send = await sendOf(c, issueId);
  const result = await cancelSend(c.pool, send.id);
  if (!result) throw conflict('send_finished', `the send is already ${send.status === 'done' ? 'done' : send.status}`);
  if (result.forgotten) {
    log.info({ issueId, sendId: send.id }, 'send cancelled before it mailed anyone: the issue is a draft again');
    await removeFanoutJob(c, send.id, log);
  } else log.info({ issueId, sendId: send.id }, 'send cancelled');
  return result;
}

/**
 * Moves a scheduled send to another future time, and its delayed fan-out job with it. A job that
 * cannot be moved (it is running at this moment) finds the send not yet due and ends; the
 * supervisor adds it again for the new time.
 */
export async function reschedule(c: SendControlDeps, issueId: number, at: Date, log: LogLines = c.log): Promise<SendRow> {
  assertFuture(at);
  const moved = await rescheduleSend(c.pool, issueId, at);
  if (!moved) throw notScheduled(await sendOf(c, issueId));
  log.info({ issueId, sendId: moved.id, scheduledAt: moved.scheduled_at }, 'scheduled send moved');
  try {
    const job = await c.queues.fanout.getJob(fanoutJobId(moved.id));
    if (job && (await job.isDelayed())) await job.changeDelay(Math.max(0, at.getTime() - Date.now()));
    else if (!job) await ensureFanoutJob(c, moved);
  } catch (err) {
    // The start checks the time itself (startScheduled), so a job left at the old time starts nothing early.
    log.warn({ sendId: moved.id, err: (err as Error).message }, 'could not move the delayed fan-out job now; the supervisor will add it');
  }
  return moved;
}

/** Takes a scheduled send back before it starts: the issue is a draft again, its delayed job removed. */
export async function unschedule(c: SendControlDeps, issueId: number, log: LogLines = c.log): Promise<SendRow> {
  const removed = await unscheduleSend(c.pool, issueId);
  if (!removed) throw notScheduled(await sendOf(c, issueId));
  log.info({ issueId, sendId: removed.id }, 'scheduled send taken back: the issue is a draft again');
  await removeFanoutJob(c, removed.id, log);
  return removed;
}

/**
 * The delayed (or finished) fan-out job of a send that no longer exists. A job running at this
 * moment cannot be removed: it finds no send and ends.
 */
async function removeFanoutJob(c: SendControlDeps, sendId: number, log: LogLines): Promise<void> {
  try {
    await c.queues.fanout.remove(fanoutJobId(sendId));
  } catch (err) {
    log.warn({ sendId, err: (err as Error).message }, 'could not remove the fan-out job; it will find no send and end');
  }
}

const notScheduled = (send: SendRow) =>
  conflict(
    'not_scheduled',
    send.status === 'sending' || send.status === 'paused'
      ? `the send started at ${send.started_at?.toISOString() ?? 'its time'}: it can no longer be moved or taken back (pause or cancel it instead)`
      : `the send is ${send.status}; only a scheduled send can be moved or taken back`,
  );

/**
 * Queues again the send's failed messages whose readers are still active, and feeds them: a
 * done send is sending again. Refused for a scheduled send (nothing has failed) and a cancelled
 * one (send it again first).
 */
export async function retryFailed(c: SendControlDeps, issueId: number, log: LogLines = c.log): Promise<{ send: SendRow; queued: number }> {
  const send = await sendOf(c, issueId);
  const result = await retryFailedMessages(c.pool, send.id);
  if (!result) {
    throw send.status === 'cancelled'
      ? conflict('send_cancelled', 'the send was cancelled: send the issue again (POST /api/issues/:id/send) to reach the readers it missed')
      : conflict('not_started', `the send is ${send.status}; nothing has been tried yet`);
  }
  if (result.queued > 0) {
    log.info({ issueId, sendId: send.id, messages: result.queued }, 'failed messages queued again');
    if (result.send.status === 'sending') await addFanoutJob(c, result.send, log);
  }
  return result;
}
