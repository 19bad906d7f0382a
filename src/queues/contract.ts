// The job contract shared by the API (producer) and the worker (consumer): queue names, job
// names and payloads. Payloads carry ids only; the worker re-reads the rows it needs.

export const queueNames = {
  /** Mail to one reader about their subscription: confirmation and welcome. */
  readerMail: 'reader-mail',
} as const;

export type ReaderMailJob =
  | { kind: 'confirmation'; subscriberId: number }
  | { kind: 'welcome'; subscriberId: number };

export type ReaderMailKind = ReaderMailJob['kind'];

/**
 * Deterministic job ids make enqueueing idempotent: a retried request or a double click adds
 * no second job while the first one is still known to BullMQ.
 */
export function readerMailJobId(job: ReaderMailJob, nonce: string | number): string {
  return `${job.kind}-${job.subscriberId}-${nonce}`;
}
