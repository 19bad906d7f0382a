import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { queueNames, type ReaderMailJob } from './contract.js';

export * from './contract.js';

export type Queues = {
  readerMail: Queue<ReaderMailJob>;
  close(): Promise<void>;
};

export function createQueues(connection: Redis, prefix: string): Queues {
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
  return {
    readerMail,
    async close() {
      await readerMail.close();
    },
  };
}
