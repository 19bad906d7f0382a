import type { Pool } from '../db/pool.js';
import { describeDatabaseError } from '../db/unavailable.js';
import type { Logger } from '../log.js';
import { renewClaims, type Claim } from './queries.js';

type Held = Pick<Claim, 'id' | 'attempts'>;

/** How often claims are renewed: a quarter of the sending timeout, at most 5 s, at least 250 ms. */
export function renewalIntervalMs(sendingTimeoutSeconds: number): number {
  return Math.max(250, Math.min(5000, (sendingTimeoutSeconds * 1000) / 4));
}

/**
 * The claims of this process that are in flight (claimed, outcome not yet recorded), renewed
 * every few seconds in one statement. A claim is held from the claim until its outcome is
 * committed or the claim is given back, however long the message waits for a pooled SMTP
 * connection, for a slow relay, or for a status write Postgres did not take yet. So a claim
 * older than SENDING_TIMEOUT_SECONDS really is a dead (or cut-off) worker's, and recovery never
 * sends a live worker's message a second time.
 *
 * A renewal that fails (Postgres away) is tried again at the next tick; after a Postgres restart
 * the timeout counts from the restart (see staleClaim), so the next renewal is in time.
 */
export class ClaimKeeper {
  private readonly held = new Map<number, number>();
  private readonly timer: NodeJS.Timeout;
  private renewing: Promise<void> | undefined;
  private failing = false;

  constructor(
    private readonly pool: Pool,
    private readonly log: Logger,
    everyMs: number,
  ) {
    this.timer = setInterval(() => this.renew(), everyMs);
    this.timer.unref();
  }

  hold(claim: Held): void {
    this.held.set(claim.id, claim.attempts);
  }

  /** The claim's outcome is recorded (or the claim given back): stop renewing it. */
  drop(claim: Held): void {
    if (this.held.get(claim.id) === claim.attempts) this.held.delete(claim.id);
  }

  private renew(): void {
    if (this.renewing || this.held.size === 0) return;
    const claims = [...this.held].map(([id, attempts]) => ({ id, attempts }));
    this.renewing = renewClaims(this.pool, claims)
      .then(
        () => {
          if (this.failing) this.log.info({ claims: claims.length }, 'claims renewed again: Postgres is back');
          this.failing = false;
        },
        (err: unknown) => {
          // Once per outage: the next tick tries again.
          if (!this.failing) this.log.warn({ claims: claims.length, err: describeDatabaseError(err) }, 'could not renew claims in flight; trying again');
          this.failing = true;
        },
      )
      .finally(() => (this.renewing = undefined));
  }

  /** Stops renewing (once nothing is in flight any more: after the workers and the status writes). */
  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.renewing;
  }
}
