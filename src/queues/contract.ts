// The job contract shared by the API (producer) and the worker (consumer): queue names, job
// names and payloads. Payloads carry ids only; the worker re-reads the rows it needs.

export const queueNames = {
  /** Mail to one reader about their subscription: confirmation, welcome, link to their data. */
  readerMail: 'reader-mail',
  /** One job per send: writes the message rows and feeds the deliver queue, for the whole send. */
  fanout: 'send-fanout',
  /** One job per message: claim, personalise, submit, record. */
  deliver: 'deliver',
} as const;

/** The fan-out of one send. Delayed until the send's scheduled time. */
export type FanoutJob = { sendId: number };

/**
 * One reader's copy of an issue. Ids only: the worker claims the message row and reads the
 * reader and the compiled issue itself, so a payload can never carry stale content.
 */
export type DeliverJob = { messageId: number; sendId: number };

/** At most one fan-out job per send is known to BullMQ at a time. */
export const fanoutJobId = (sendId: number) => `send-${sendId}`;
/**
 * One job per message per claim and feed generation: feeding a message again is a no-op while its
 * job exists, yet a message queued again after a dead worker's claim (attempts moved on) or fed
 * again after Redis lost its jobs (generation moved on) gets a new job, not a stale id.
 */
export const deliverJobId = (messageId: number, attempts: number, generation: number) => `m-${messageId}-${attempts}-${generation}`;

/** A message's deliver job as `addBulk` takes it: its data and its id (see deliverJobId). */
export const deliverJob = (sendId: number, message: { id: number; attempts: number }, generation: number) => ({
  name: 'deliver',
  data: { messageId: message.id, sendId } satisfies DeliverJob,
  opts: { jobId: deliverJobId(message.id, message.attempts, generation) },
});

export type ReaderMailJob =
  | { kind: 'confirmation'; subscriberId: number }
  | { kind: 'welcome'; subscriberId: number }
  /** A fresh link to the reader's data, asked for from their manage page; the link is made when the mail is. */
  | { kind: 'data-link'; subscriberId: number };

export type ReaderMailKind = ReaderMailJob['kind'];

/**
 * Deterministic job ids make enqueueing idempotent: a retried request or a double click adds
 * no second job while the first one is still known to BullMQ.
 */
export function readerMailJobId(job: ReaderMailJob, nonce: string | number): string {
  return `${job.kind}-${job.subscriberId}-${nonce}`;
}
