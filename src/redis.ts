import { Redis } from 'ioredis';

/**
 * Connection for producers and the API: fails fast when Redis is down instead of queueing
 * commands in memory (BullMQ's production advice), so a request gets an error, not a hang.
 */
export function createProducerConnection(url: string): Redis {
  return new Redis(url, { enableOfflineQueue: false, maxRetriesPerRequest: 1, lazyConnect: true });
}

/** Connection for BullMQ workers: blocking commands must retry forever. */
export function createWorkerConnection(url: string): Redis {
  return new Redis(url, { maxRetriesPerRequest: null });
}
