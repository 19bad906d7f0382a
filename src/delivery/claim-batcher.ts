import type { Pool } from '../db/pool.js';
import { claimMessages, type Claim } from './queries.js';

type Pending = { id: number; resolve: (claim: Claim | undefined) => void; reject: (err: unknown) => void };

/**
 * Groups the claims of a process's deliveries into one statement (claimMessages), the way
 * StatusWriter groups their submissions: a claim asked for while none is being written goes out
 * on the next turn of the event loop, with whatever else was asked for in the same turn; claims
 * asked for while one is being written wait for it and go out together as soon as it is done.
 * No claim waits for a timer, and no claim is taken before its delivery asked for it: every
 * caller already holds its slot of the pacer, so the number of messages in flight is what it
 * was with a statement per message. A statement that fails fails each of its callers (each job
 * then goes back to waiting, like one claim that failed).
 */
export class ClaimBatcher {
  private pending: Pending[] = [];
  private scheduled = false;
  private writing = 0;

  constructor(
    private readonly pool: Pool,
    private readonly timeoutSeconds: number,
    private readonly maxBatch = 100,
    /** Statements at once: one keeps the grouping; two let a slow one not hold up every delivery. */
    private readonly maxWriting = 2,
  ) {}

  claim(messageId: number): Promise<Claim | undefined> {
    return new Promise((resolve, reject) => {
      this.pending.push({ id: messageId, resolve, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled || this.writing >= this.maxWriting || this.pending.length === 0) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.flush();
    });
  }

  private flush(): void {
    if (this.writing >= this.maxWriting || this.pending.length === 0) return;
    const batch = this.pending.splice(0, this.maxBatch);
    this.writing++;
    // One id once: a job fed twice for one message asks twice; the second caller finds it claimed.
    const ids = [...new Set(batch.map((p) => p.id))];
    claimMessages(this.pool, ids, this.timeoutSeconds)
      .then(
        (claims) => {
          const byId = new Map(claims.map((c) => [c.id, c]));
          for (const p of batch) {
            p.resolve(byId.get(p.id));
            byId.delete(p.id);
          }
        },
        (err) => {
          for (const p of batch) p.reject(err);
        },
      )
      .finally(() => {
        this.writing--;
        this.schedule();
      });
  }
}
