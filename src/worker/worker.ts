import { UnrecoverableError, Worker } from 'bullmq';
import type { Container } from '../container.js';
import { smtpResponseCode } from '../delivery/mailer.js';
import { queueNames, type ReaderMailJob } from '../queues/contract.js';
import { createWorkerConnection } from '../redis.js';
import { sendReaderMail } from '../subscribers/reader-mail.js';

export type RunningWorker = { close(): Promise<void> };

/** Starts the BullMQ workers of this process. Stateless: run as many processes as you like. */
export function startWorkers(c: Container): RunningWorker {
  const connection = createWorkerConnection(c.config.redisUrl);
  const readerMail = new Worker<ReaderMailJob>(
    queueNames.readerMail,
    async (job) => {
      try {
        const outcome = await sendReaderMail(c, job.data);
        c.log.info({ jobId: job.id, kind: job.data.kind, subscriberId: job.data.subscriberId, outcome }, 'reader mail');
        return outcome;
      } catch (err) {
        const code = smtpResponseCode(err);
        // A permanent SMTP rejection will not change on retry.
        if (code !== undefined && code >= 500) {
          c.log.warn({ jobId: job.id, kind: job.data.kind, subscriberId: job.data.subscriberId, smtpCode: code }, 'reader mail rejected permanently');
          throw new UnrecoverableError(`SMTP ${code}: ${(err as Error).message}`);
        }
        throw err;
      }
    },
    { connection, prefix: c.config.queuePrefix, concurrency: c.config.workerConcurrency },
  );
  readerMail.on('failed', (job, err) => {
    c.log.warn({ jobId: job?.id, attemptsMade: job?.attemptsMade, err: err.message }, 'reader mail attempt failed');
  });
  readerMail.on('error', (err) => c.log.error({ err }, 'reader mail worker error'));
  return {
    async close() {
      // Stops taking jobs and waits for the ones in flight.
      await readerMail.close();
      connection.disconnect();
    },
  };
}
