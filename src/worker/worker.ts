import { DelayedError, UnrecoverableError, Worker } from 'bullmq';
import type { Container } from '../container.js';
import type { Logger } from '../log.js';
import { startReportRetention } from '../bounces/inbound/retention.js';
import { classifySmtpError } from '../delivery/classify-smtp-error.js';
import { DatabaseUnavailable, Deliverer, MessageBackedOff, RelayUnavailable, TemporaryFailure } from '../delivery/deliver.js';
import { SmtpUtf8Unavailable } from '../delivery/mailer.js';
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
        if (err instanceof SmtpUtf8Unavailable) {
          // The relay will not take the address however often we ask (and it is not a bounce).
          log.warn(err.message);
          throw new UnrecoverableError(err.message);
        }
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
  fanout.on('failed', (job, err) => {
    // Postgres away, or the lock's connection lost: BullMQ runs it again after its backoff (and
    // the supervisor adds it again once its attempts are spent); it continues from its checkpoints.
    c.log.warn(
      { queue: queueNames.fanout, jobId: job?.id, sendId: job?.data.sendId, attemptsMade: job?.attemptsMade, err: err.message },
      'fan-out run failed; it runs again',
    );
  });

  const status = new StatusWriter(c.pool, c.log);
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
      // The job's logger, made when a line is written: a submitted message writes none.
      let jobLog: Logger | undefined;
      const logOf = () => (jobLog ??= c.log.child({ queue: queueNames.deliver, jobId: job.id, messageId: job.data.messageId, sendId: job.data.sendId }));
      try {
        const outcome = await deliverer.deliver(job.data, { isLast: job.attemptsMade + 1 >= (job.opts.attempts ?? 1) }, logOf);
        if (outcome !== 'submitted') logOf().debug({ outcome }, 'message not submitted');
        c.metrics.messageOutcome(outcome);
        return outcome;
      } catch (err) {
        if (err instanceof DatabaseUnavailable) {
          // Like an unavailable relay: every worker on this queue waits and the job goes back to
          // waiting with its attempts untouched, so an outage of any length fails nobody.
          logOf().warn({ err: err.message, retryInMs: retryDelayMs }, 'Postgres unavailable: delivery waits');
          c.metrics.deliveryRetry('database_unavailable');
          await deliver.rateLimit(retryDelayMs);
          throw Worker.RateLimitError();
        }
        if (err instanceof MessageBackedOff) {
          // This message waits, with no attempt spent; the rest of the queue goes on. Its job is
          // delayed, so it stays in the fan-out's count of waiting jobs. Each back-off of the
          // same job doubles the wait (the job started without spending an attempt that many
          // times), up to RETRY_DELAY_SECONDS: less than the fan-out's stall time (twice that),
          // so a backed-off message is touched again before the fan-out would take it for lost.
          const backoffs = Math.max(0, job.attemptsStarted - job.attemptsMade - 1);
          const delayMs = backoffDelayMs(backoffs, backoffCapMs);
          logOf().debug(
            { smtpCode: err.failure.code, response: err.failure.response, kind: err.failure.kind, backoffs, delayMs },
            'SMTP relay refused this transaction: message backed off',
          );
          c.metrics.deliveryRetry('backed_off');
          await job.moveToDelayed(Date.now() + delayMs, token);
          throw new DelayedError();
        }
        if (err instanceof RelayUnavailable) {
          // The relay refused a run of transactions: every worker on this queue waits, and the
          // job goes back to waiting without spending an attempt. The send stalls until the
          // relay is back.
          // The Deliverer says once when the relay becomes unavailable; a line per job is noise.
          logOf().debug({ smtpCode: err.failure?.code, response: err.failure?.response, retryInMs: retryDelayMs }, 'SMTP relay unavailable: delivery waits');
          c.metrics.deliveryRetry('relay_unavailable');
          await deliver.rateLimit(retryDelayMs);
          throw Worker.RateLimitError();
        }
        if (err instanceof TemporaryFailure) {
          logOf().info({ attemptsMade: job.attemptsMade + 1, response: err.failure.response }, 'temporary SMTP failure: will retry');
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
  deliver.on('failed', (job, err) => {
    // What the processor above did not already explain: an error nobody expected.
    if (err instanceof TemporaryFailure || err instanceof RelayUnavailable || err instanceof DatabaseUnavailable || err instanceof UnrecoverableError) return;
    c.log.warn(
      { queue: queueNames.deliver, jobId: job?.id, messageId: job?.data.messageId, attemptsMade: job?.attemptsMade, err: err.message },
      'delivery failed; BullMQ tries again',
    );
  });

  const supervisor = startSupervisor(c);
  const retention = startReportRetention(c);
  return {
    async close() {
      // Phase one: take no new jobs; the fan-out loops stop at their next step. Phase two:
      // the jobs in flight finish (their results are recorded), then the writes are flushed.
      stopping = true;
      await Promise.all([supervisor.close(), retention.close()]);
      await Promise.all([readerMail.close(), fanout.close(), deliver.close()]);
      await Promise.all([status.close(), rateGuard.close()]);
      // Claims are renewed until the last outcome is recorded.
      await deliverer.close();
      connection.disconnect();
    },
  };
}
