import { DelayedError, UnrecoverableError, Worker } from 'bullmq';
import type { Container } from '../container.js';
import { classifySmtpError } from '../delivery/classify-smtp-error.js';
import { Deliverer, MessageBackedOff, RelayUnavailable, TemporaryFailure } from '../delivery/deliver.js';
import { backoffDelayMs } from '../delivery/relay-pacing.js';
import { StatusWriter } from '../delivery/status-writer.js';
import { queueNames, type DeliverJob, type FanoutJob, type ReaderMailJob } from '../queues/contract.js';
import { runFanout } from '../sending/fanout.js';
import { RateGuard } from '../sending/rate-guard.js';
import { startSupervisor } from '../sending/supervisor.js';
import { createWorkerConnection } from '../redis.js';
import { sendReaderMail } from '../subscribers/reader-mail.js';

export type RunningWorker = { close(): Promise<void> };

/** Starts the BullMQ workers of this process. Stateless: run as many processes as you like. */
export function startWorkers(c: Container): RunningWorker {
  const connection = createWorkerConnection(c.config.redisUrl);
  const readerMail = new Worker<ReaderMailJob>(
    queueNames.readerMail,
    async (job) => {
      const log = c.log.child({ queue: queueNames.readerMail, jobId: job.id, kind: job.data.kind, subscriberId: job.data.subscriberId });
      try {
        const outcome = await sendReaderMail(c, job.data);
        log.info({ outcome }, 'reader mail');
        return outcome;
      } catch (err) {
        // A refusal of this recipient or message for good will not change on retry. Anything else
        // (a throttle, the relay away, our sender refused) is retried with backoff: the reader
        // is not at fault.
        const failure = classifySmtpError(err);
        if (failure.kind === 'permanent') {
          log.warn({ smtpCode: failure.code }, 'reader mail rejected permanently');
          throw new UnrecoverableError(`SMTP ${failure.code}: ${(err as Error).message}`);
        }
        throw err;
      }
    },
    { connection, prefix: c.config.queuePrefix, concurrency: c.config.workerConcurrency },
  );
  readerMail.on('failed', (job, err) => {
    c.log.warn({ queue: queueNames.readerMail, jobId: job?.id, attemptsMade: job?.attemptsMade, err: err.message }, 'reader mail attempt failed');
  });
  readerMail.on('error', (err) => c.log.error({ queue: queueNames.readerMail, err }, 'reader mail worker error'));

  let stopping = false;
  const fanout = new Worker<FanoutJob>(
    queueNames.fanout,
    async (job) => {
      const log = c.log.child({ queue: queueNames.fanout, jobId: job.id });
      const end = await runFanout(c, job.data.sendId, () => stopping, log);
      log.info({ sendId: job.data.sendId, end }, 'fan-out job ended');
      return end;
    },
    {
      connection,
      prefix: c.config.queuePrefix,
      concurrency: 4,
      // A fan-out runs as long as its send. If its process dies, BullMQ's stalled check hands
      // it to another worker (once its 10 s lock lapses), however often that happens.
      lockDuration: 10_000,
      stalledInterval: 5_000,
      maxStalledCount: 1_000_000,
    },
  );
  fanout.on('error', (err) => c.log.error({ queue: queueNames.fanout, err }, 'fan-out worker error'));

  const status = new StatusWriter(c.pool);
  const rateGuard = new RateGuard(c);
  const deliverer = new Deliverer(c, status, (sendId) => rateGuard.bounced(sendId));
  const retryDelayMs = c.config.retryDelaySeconds * 1000;
  const backoffCapMs = retryDelayMs;
  const deliver: Worker<DeliverJob> = new Worker<DeliverJob>(
    queueNames.deliver,
    async (job, token) => {
      // A job whose data Redis lost (only its id survived) can deliver nothing; the fan-out
      // feeds its message again under a new id.
      if (!Number.isSafeInteger(job.data?.messageId)) throw new UnrecoverableError(`job ${job.id} has no message id`);
      const log = c.log.child({ queue: queueNames.deliver, jobId: job.id, messageId: job.data.messageId, sendId: job.data.sendId });
      try {
        const outcome = await deliverer.deliver(job.data, { isLast: job.attemptsMade + 1 >= (job.opts.attempts ?? 1) }, log);
        if (outcome !== 'submitted') log.debug({ outcome }, 'message not submitted');
        c.metrics.messageOutcome(outcome);
        return outcome;
      } catch (err) {
        if (err instanceof MessageBackedOff) {
          // This message waits, with no attempt spent; the rest of the queue goes on. Its job is
          // delayed, so it stays in the fan-out's count of waiting jobs. Each back-off of the
          // same job doubles the wait (the job started without spending an attempt that many
          // times), up to RETRY_DELAY_SECONDS: less than the fan-out's stall time (twice that),
          // so a backed-off message is touched again before the fan-out would take it for lost.
          const backoffs = Math.max(0, job.attemptsStarted - job.attemptsMade - 1);
          const delayMs = backoffDelayMs(backoffs, backoffCapMs);
          log.debug({ smtpCode: err.failure.code, response: err.failure.response, kind: err.failure.kind, backoffs, delayMs }, 'SMTP relay refused this transaction: message backed off');
          c.metrics.deliveryRetry('backed_off');
          await job.moveToDelayed(Date.now() + delayMs, token);
          throw new DelayedError();
        }
        if (err instanceof RelayUnavailable) {
          // The relay refused a run of transactions: every worker on this queue waits, and the
          // job goes back to waiting without spending an attempt. The send stalls until the
          // relay is back.
          // The Deliverer says once when the relay becomes unavailable; a line per job is noise.
          log.debug({ smtpCode: err.failure?.code, response: err.failure?.response, retryInMs: retryDelayMs }, 'SMTP relay unavailable: delivery waits');
          c.metrics.deliveryRetry('relay_unavailable');
          await deliver.rateLimit(retryDelayMs);
          throw Worker.RateLimitError();
        }
        if (err instanceof TemporaryFailure) {
          log.info({ attemptsMade: job.attemptsMade + 1, response: err.failure.response }, 'temporary SMTP failure: will retry');
          c.metrics.deliveryRetry('temporary');
        }
        throw err;
      }
    },
    {
      connection,
      prefix: c.config.queuePrefix,
      concurrency: c.config.deliveryConcurrency,
      // Global across every worker process: BullMQ keeps the count in Redis.
      limiter: c.config.sendRate > 0 ? { max: c.config.sendRate, duration: 1000 } : undefined,
    },
  );
  deliver.on('error', (err) => c.log.error({ queue: queueNames.deliver, err }, 'deliver worker error'));

  const supervisor = startSupervisor(c);
  return {
    async close() {
      // Phase one: take no new jobs; the fan-out loops stop at their next step. Phase two:
      // the jobs in flight finish (their results are recorded), then the writes are flushed.
      stopping = true;
      await supervisor.close();
      await Promise.all([readerMail.close(), fanout.close(), deliver.close()]);
      await Promise.all([status.close(), rateGuard.close()]);
      connection.disconnect();
    },
  };
}
