import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { queueNames, type DeliverJob, type FanoutJob, type ReaderMailJob } from './contract.js';

export * from './contract.js';

export type Queues = {
  readerMail: Queue<ReaderMailJob>;
  fanout: Queue<FanoutJob>;
  deliver: Queue<DeliverJob>;
  /** The three above, for what treats them alike (errors, depths, the dashboard, closing). */
  all: Queue[];
  close(): Promise<void>;
};

export type DeliveryRetry = { attempts: number; delayMs: number };

/**
 * The producer side of the three queues, on one shared connection. `onError` hears their
 * connection errors (without a listener BullMQ prints them to the console).
 */
export function createQueues(connection: Redis, prefix: string, retry: DeliveryRetry, onError: (err: Error, queue: string) => void): Queues {
  const readerMail = new Queue<ReaderMailJob>(queueNames.readerMail, {
    connection,
    prefix,
    defaultJobOptions: {
      attempts: 8,
      backoff: { type: 'exponential', delay: 2000 },
      removeOnComplete: { age: 24 * 3600, count: 10000 },
      removeOnFail: { age: 7 * 24 * 3600 },
    },
  });
  const fanout = new Queue<FanoutJob>(queueNames.fanout, {
    connection,
    prefix,
    defaultJobOptions: {
      // A fan-out that fails (Postgres away) tries again; the supervisor re-adds it after that.
      attempts: 10,
      backoff: { type: 'exponential', delay: 1000 },
      // Removed when finished, so a resumed or recovered send can add its job again.
      removeOnComplete: true,
      removeOnFail: true,
    },
  });
  const deliver = new Queue<DeliverJob>(queueNames.deliver, {
    connection,
    prefix,
    defaultJobOptions: {
      attempts: retry.attempts,
      backoff: { type: 'exponential', delay: retry.delayMs },
      // The message row is the record; a finished job is forgotten so that its message can be
      // fed again if it is ever queued again (resume, recovery).
      removeOnComplete: true,
      removeOnFail: true,
    },
  });
  const all = [readerMail, fanout, deliver] as Queue[];
  for (const q of all) q.on('error', (err) => onError(err, q.name));
  return {
    readerMail,
    fanout,
    deliver,
    all,
    async close() {
      await Promise.all(all.map((q) => q.close()));
    },
  };
}
