import type { JobType } from 'bullmq';
import type { Queues } from '../queues/index.js';

/**
 * The states a scrape reports. BullMQ 6 keeps a paused queue's jobs in `waiting` (there is no
 * paused list), and `completed` is not depth: deliver jobs are removed when done.
 */
export const QUEUE_STATES = ['waiting', 'prioritized', 'active', 'delayed', 'failed'] as const satisfies readonly JobType[];

export type QueueDepth = { queue: string; counts: Record<string, number> };

/**
 * Job counts of every queue, or undefined when Redis fails or has not answered within
 * `timeoutMs`: the producer connection fails fast when Redis is down, but a Redis that accepts
 * commands and never answers would otherwise hold the scrape forever.
 */
export async function readQueueDepths(queues: Queues, timeoutMs: number): Promise<QueueDepth[] | undefined> {
  const reading = Promise.all(queues.all.map(async (q) => ({ queue: q.name, counts: await q.getJobCounts(...QUEUE_STATES) })));
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<undefined>((resolve) => {
    timer = setTimeout(resolve, timeoutMs, undefined);
  });
  try {
    return await Promise.race([reading, timedOut]);
  } catch {
    return undefined;
  } finally {
    clearTimeout(timer);
    // A read that lost the race may still fail later: that is expected, not unhandled.
    reading.catch(() => undefined);
  }
}
