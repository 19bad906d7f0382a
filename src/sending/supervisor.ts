import type { Container } from '../container.js';

/** What the supervisor touches: Postgres, the fan-out queue, the timeouts and thresholds, the log. */
type SupervisorDeps = Pick<Container, 'pool' | 'queues' | 'config' | 'log'>;
import { describeDatabaseError, isDatabaseUnavailable } from '../db/unavailable.js';
import { fanoutJobId, type FanoutJob } from '../queues/contract.js';
import { guardSends } from './rate-guard.js';
import { forgetUnmailed, recoverStuck, unfinishedSends, type SendRow } from './queries.js';

/**
 * Adds the fan-out job of a send (delayed until its time when scheduled). The job id makes this
 * idempotent: while the send's job exists, adding it again does nothing.
 */
export async function ensureFanoutJob(c: Pick<Container, 'queues'>, send: Pick<SendRow, 'id' | 'status' | 'scheduled_at'>): Promise<void> {
  const delay = send.status === 'scheduled' ? Math.max(0, send.scheduled_at.getTime() - Date.now()) : 0;
  await c.queues.fanout.add('fanout', { sendId: send.id } satisfies FanoutJob, { jobId: fanoutJobId(send.id), delay });
}

/**
 * Runs in every worker process, at start and then every few seconds; every step is idempotent,
 * so any number of them may run at once.
 * - Claims not renewed for SENDING_TIMEOUT_SECONDS (their worker died) go back to queued, or
 *   become cancelled (in doubt) when their send was cancelled.
 * - Every scheduled or sending send has its fan-out job: a scheduled send whose time passed
 *   while the service was down starts now, once; a send whose job Redis lost gets it back.
 * - A cancelled send that mailed nobody is forgotten: its issue is a draft again.
 * - A send whose bounce or complaint rate passed its threshold (reports arrive through the API
 *   process too) raises its alert and is paused (see rate-guard.ts).
 */
async function superviseSends(c: SupervisorDeps): Promise<void> {
  for (const r of await recoverStuck(c.pool, c.config.sendingTimeoutSeconds)) {
    if (r.recovered > r.in_doubt)
      c.log.warn({ sendId: r.send_id, messages: r.recovered - r.in_doubt }, 'messages stuck in sending (worker gone?) are queued again');
    if (r.in_doubt > 0) {
      c.log.warn(
        { sendId: r.send_id, messages: r.in_doubt },
        'messages stuck in sending (worker gone?) in a cancelled send are cancelled, in doubt: the relay may have them',
      );
    }
  }
  // A cancelled send whose last messages in flight were refused after the cancel mailed nobody:
  // its issue is a draft again (cancelSend does this at once when nothing is in flight).
  for (const f of await forgetUnmailed(c.pool, null)) {
    c.log.info({ issueId: f.issue_id, sendId: f.send_id }, 'cancelled send mailed nobody: the issue is a draft again');
  }
  const sends = await unfinishedSends(c.pool);
  for (const send of sends) await ensureFanoutJob(c, send);
  await guardSends(c, sends);
}

export function startSupervisor(c: SupervisorDeps): { close(): Promise<void> } {
  // A quarter of the sending timeout, between 1 and 15 seconds: recovery follows the timeout
  // closely without polling Postgres more than needed.
  const everyMs = Math.min(15_000, Math.max(1000, (c.config.sendingTimeoutSeconds * 1000) / 4));
  let running: Promise<void> | undefined;
  // Postgres away: said once, not at every pass until it is back.
  let unavailable = false;
  const tick = () => {
    running ??= superviseSends(c)
      .then(
        () => {
          if (unavailable) c.log.info('send supervision works again: Postgres is back');
          unavailable = false;
        },
        (err: unknown) => {
          if (!isDatabaseUnavailable(err)) c.log.warn({ err: (err as Error).message }, 'send supervision failed; trying again shortly');
          else if (!unavailable) c.log.warn({ err: describeDatabaseError(err) }, 'send supervision waits: Postgres unavailable');
          unavailable ||= isDatabaseUnavailable(err);
        },
      )
      .finally(() => (running = undefined));
  };
  tick();
  const timer = setInterval(tick, everyMs);
  return {
    async close() {
      clearInterval(timer);
      await running;
    },
  };
}
