import { setTimeout as sleep } from 'node:timers/promises';
import type { Pool } from '../db/pool.js';
import { describeDatabaseError, isDatabaseUnavailable } from '../db/unavailable.js';
import type { Logger } from '../log.js';
import { markSubmitted } from './queries.js';

type Pending = { id: number; response: string; done: (err?: unknown) => void };

/** Submissions handed to another statement (see StatusWriter.takeWaiting); exactly one of committed and failed is called. */
export type Riders = { ids: number[]; responses: string[]; committed: () => void; failed: () => void };

/** deadlock_detected, serialization_failure: the statement was rolled back, and may simply run again. */
const LOCK_CONFLICTS = new Set(['40P01', '40001']);
export const isLockConflict = (err: unknown) => LOCK_CONFLICTS.has((err as { code?: unknown })?.code as string);

/** Waits between tries of a write that lost Postgres: doubling from the first, up to the last. */
const WRITE_RETRY_MS = { first: 100, max: 2000 };

/**
 * Records submissions in batches: one UPDATE over `unnest` arrays for up to `maxBatch` messages,
 * written when the batch is full or `maxDelayMs` after its first entry. Each caller waits for its
 * own batch to commit (group commit), so a job completes only once its message is recorded:
 * nothing is lost on shutdown, and a crash leaves at most the in-flight messages in `sending`.
 *
 * The relay has these messages: a write that fails because Postgres is unreachable (restart,
 * failover, a cut connection) is tried again, with backoff, until it commits, never dropped (the
 * message would be sent again). The statement is idempotent, so a write that committed but whose
 * answer was lost does nothing the second time. A write Postgres rolled back to break a
 * deadlock is tried again too, after a moment: it was not wrong, only unlucky. Meanwhile the
 * callers keep waiting and their messages stay in flight (their claims renewed: see
 * ClaimKeeper). Any other error fails the batch.
 *
 * In a worker, most batches do not wait for their delay: the ClaimBatcher's next group of claims
 * takes them (takeWaiting) and records them in its own statement, one commit for both; a batch
 * due before any claim came goes through the ClaimBatcher's lane too (carryBy), so a process
 * runs one such statement at a time.
 */
export class StatusWriter {
  private pending: Pending[] = [];
  private timer: NodeJS.Timeout | undefined;
  private writing = new Set<Promise<void>>();
  private carrier: (() => void) | undefined;

  private readonly maxBatch: number;
  private readonly maxDelayMs: number;

  constructor(
    private readonly pool: Pool,
    private readonly log: Logger,
    { maxBatch = 500, maxDelayMs = 10 }: { maxBatch?: number; maxDelayMs?: number } = {},
  ) {
    this.maxBatch = maxBatch;
    this.maxDelayMs = maxDelayMs;
  }

  submitted(id: number, response: string): Promise<void> {
    return new Promise((resolve, reject) => {
      this.pending.push({ id, response, done: (err) => (err ? reject(err) : resolve()) });
      if (this.pending.length >= this.maxBatch) this.due();
      else this.timer ??= setTimeout(() => this.due(), this.maxDelayMs);
    });
  }

  /**
   * From now on a batch that is due (full, or its delay over) is not written alone but handed to
   * `carry`, which runs a statement that takes it (takeWaiting) as soon as it can: the
   * ClaimBatcher's, in its one lane, after the statement in flight. close() still writes alone.
   */
  carryBy(carry: () => void): void {
    this.carrier = carry;
  }

  private due(): void {
    if (!this.carrier) {
      this.flush();
      return;
    }
    clearTimeout(this.timer);
    this.timer = undefined;
    this.carrier();
  }

  private flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    const batch = this.pending;
    if (batch.length === 0) return;
    this.pending = [];
    this.writeAlone(batch);
  }

  /** Writes the batch in a statement of its own, trying again until it commits (see write). */
  private writeAlone(batch: Pending[]): void {
    const write = this.write(batch).then(
      () => {
        for (const p of batch) p.done();
      },
      (err) => {
        for (const p of batch) p.done(err);
      },
    );
    this.writing.add(write);
    void write.finally(() => this.writing.delete(write));
  }

  /**
   * Hands what is waiting (at most a batch) to a statement about to run, which records it in
   * its own transaction (ClaimBatcher's claims: one commit for both). Its callers wait for that
   * statement: `committed()` resolves them; `failed()` writes the batch alone as usual, so a
   * submission is never dropped nor failed for a fault of the statement it rode with.
   * Undefined when nothing waits.
   */
  takeWaiting(): Riders | undefined {
    if (this.pending.length === 0) return undefined;
    const batch = this.pending.splice(0, this.maxBatch);
    clearTimeout(this.timer);
    this.timer = undefined;
    // More than a batch waited: the rest is due at once.
    if (this.pending.length > 0) this.timer = setTimeout(() => this.due(), 0);
    let settle!: () => void;
    const riding = new Promise<void>((resolve) => (settle = resolve));
    this.writing.add(riding);
    void riding.finally(() => this.writing.delete(riding));
    return {
      ids: batch.map((p) => p.id),
      responses: batch.map((p) => p.response),
      committed: () => {
        for (const p of batch) p.done();
        settle();
      },
      failed: () => {
        this.writeAlone(batch);
        settle();
      },
    };
  }

  private async write(batch: Pending[]): Promise<void> {
    const ids = batch.map((p) => p.id);
    const responses = batch.map((p) => p.response);
    for (let wait = WRITE_RETRY_MS.first, tries = 1; ; wait = Math.min(wait * 2, WRITE_RETRY_MS.max), tries++) {
      try {
        await markSubmitted(this.pool, ids, responses);
        if (tries > 1) this.log.info({ messages: ids.length, tries }, 'status write committed after Postgres came back');
        return;
      } catch (err) {
        if (isLockConflict(err)) {
          // Postgres chose this write to break a deadlock (e.g. with a claim renewal locking the
          // same rows in another order): nothing of it committed, and the next try goes through.
          this.log.info({ messages: ids.length, tries, err: describeDatabaseError(err) }, 'status write lost a lock conflict; trying again');
          await sleep(Math.min(wait, 50));
          continue;
        }
        if (!isDatabaseUnavailable(err)) throw err;
        // Once, then quietly: an outage would otherwise log a line per batch per try.
        if (tries === 1)
          this.log.warn({ messages: ids.length, err: describeDatabaseError(err) }, 'status write failed: Postgres unavailable; trying again until it commits');
        await sleep(wait);
      }
    }
  }

  /** Writes whatever is waiting and waits for every write in progress. */
  async close(): Promise<void> {
    this.flush();
    // A batch whose ride failed is then written alone: wait for that too.
    while (this.writing.size > 0) await Promise.all([...this.writing]);
  }
}
