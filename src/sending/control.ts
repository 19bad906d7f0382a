import type { Container } from '../container.js';
import type { LogLines } from '../log.js';

/** What controlling a send touches: Postgres, the fan-out queue, the log. */
type SendControlDeps = Pick<Container, 'pool' | 'queues' | 'log'>;
import { conflict, notFound } from '../errors.js';
import { cancelSend, createSend, findSendOfIssue, pauseSend, resumeSend, type SendRow } from './queries.js';
import { ensureFanoutJob } from './supervisor.js';

/**
 * Triggers the issue's one send, now or at `scheduledAt`. A second trigger returns the first send
 * untouched. If Redis is away when the job would be added, the send is still recorded and the
 * supervisor adds its job as soon as it can: the trigger is never lost.
 */
export async function triggerSend(
  c: SendControlDeps,
  issueId: number,
  scheduledAt: Date | null,
  log: LogLines = c.log,
): Promise<{ send: SendRow; created: boolean }> {
  const result = await createSend(c.pool, issueId, scheduledAt);
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
  if (!send) throw notFound('send');
  return send;
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

/** Ends a send: whatever is still queued is marked cancelled; messages in flight finish. */
export async function cancel(c: SendControlDeps, issueId: number, log: LogLines = c.log): Promise<SendRow> {
  const send = await sendOf(c, issueId);
  const cancelled = await cancelSend(c.pool, send.id);
  if (!cancelled) throw conflict('send_finished', `the send is already ${send.status}`);
  log.info({ issueId, sendId: send.id }, 'send cancelled');
  return cancelled;
}
