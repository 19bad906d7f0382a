import type { Pool } from '../db/pool.js';
import { claimMessages, claimMessagesRecording, markSubmitted, type Claim } from './queries.js';
import { isLockConflict, type Riders } from './status-writer.js';

type Pending = { id: number; resolve: (claim: Claim | undefined) => void; reject: (err: unknown) => void; tries: number };

/** How many times a claim is asked for when Postgres keeps rolling its statement back to break deadlocks. */
const LOCK_CONFLICT_TRIES = 5;

type Options = {
  maxBatch?: number;
  /**
   * Statements at once. One (the default): the claims asked for while it runs gather into the
   * next, so groups are larger and commits fewer (bench:send: 0.41 → 0.25 commits a message
   * against two at once).
   */
  maxWriting?: number;
  /** The submissions waiting to be recorded, to take along (StatusWriter.takeWaiting). */
  riders?: () => Riders | undefined;
  /**
   * How long a group gathers before its statement goes out, in ms. 0 (the default): on the
   * next turn of the event loop.
   */
  gatherMs?: number;
};

/**
 * Groups the claims of a process's deliveries into one statement (claimMessages), the way
 * StatusWriter groups their submissions: a claim asked for while none is being written goes out
 * after `gatherMs` (or on the next turn of the event loop), with whatever else was asked for
 * meanwhile; claims asked for while one is being written wait for it, and go out together
 * `gatherMs` after it is done. No claim is taken before its delivery asked for it: every caller
 * already holds its slot of the pacer, so the number of messages in flight is what it was with a
 * statement per message; a claim only waits a little longer for its statement. A statement
 * that fails fails each of its callers (each job then goes back to waiting, like one claim that
 * failed), except one that Postgres rolled back to break a deadlock: its claims are asked for
 * again with the next group.
 *
 * Each statement also records the submissions waiting in the StatusWriter (`riders`, if given):
 * one transaction, so one commit, for both groups. Should the statement fail, they are written
 * alone as usual (see StatusWriter.takeWaiting).
 */
export class ClaimBatcher {
  private pending: Pending[] = [];
  private scheduled = false;
  private writing = 0;
  /** A statement is wanted for the riders alone, whether or not claims wait (see carry). */
  private carrying = false;

  private readonly maxBatch: number;
  private readonly maxWriting: number;
  private readonly riders: () => Riders | undefined;
  private readonly gatherMs: number;

  constructor(
    private readonly pool: Pool,
    private readonly timeoutSeconds: number,
    { maxBatch = 100, maxWriting = 1, riders = () => undefined, gatherMs = 0 }: Options = {},
  ) {
    this.gatherMs = gatherMs;
    this.maxBatch = maxBatch;
    this.maxWriting = maxWriting;
    this.riders = riders;
  }

  claim(messageId: number): Promise<Claim | undefined> {
    return new Promise((resolve, reject) => {
      this.pending.push({ id: messageId, resolve, reject, tries: 0 });
      this.schedule();
    });
  }

  /**
   * Runs a statement for the riders (StatusWriter.carryBy) as soon as the one in flight is done,
   * with the claims waiting then, or with none.
   */
  carry(): void {
    this.carrying = true;
    this.schedule();
  }

  private get idle(): boolean {
    return this.pending.length === 0 && !this.carrying;
  }

  private schedule(): void {
    if (this.scheduled || this.writing >= this.maxWriting || this.idle) return;
    this.scheduled = true;
    const go = () => {
      this.scheduled = false;
      this.flush();
    };
    if (this.gatherMs > 0) setTimeout(go, this.gatherMs);
    else setImmediate(go);
  }

  private flush(): void {
    if (this.writing >= this.maxWriting || this.idle) return;
    this.carrying = false;
    const batch = this.pending.splice(0, this.maxBatch);
    const riding = this.riders();
    if (batch.length === 0 && !riding) return;
    this.writing++;
    // One id once: a job fed twice for one message asks twice; the second caller finds it claimed.
    const ids = [...new Set(batch.map((p) => p.id))];
    this.statement(ids, riding)
      .then(
        (claims) => {
          riding?.committed();
          const byId = new Map(claims.map((c) => [c.id, c]));
          for (const p of batch) {
            p.resolve(byId.get(p.id));
            byId.delete(p.id);
          }
        },
        (err) => {
          riding?.failed();
          // Nothing of it committed, and nothing was wrong with it: asked for again, first in line.
          const again = isLockConflict(err) ? batch.filter((p) => ++p.tries < LOCK_CONFLICT_TRIES) : [];
          this.pending.unshift(...again);
          for (const p of batch) if (!again.includes(p)) p.reject(err);
        },
      )
      .finally(() => {
        this.writing--;
        this.schedule();
      });
  }

  private statement(ids: number[], riding: Riders | undefined): Promise<Claim[]> {
    if (!riding) return claimMessages(this.pool, ids, this.timeoutSeconds);
    if (ids.length === 0) return markSubmitted(this.pool, riding.ids, riding.responses).then(() => []);
    return claimMessagesRecording(this.pool, ids, this.timeoutSeconds, riding);
  }
}
