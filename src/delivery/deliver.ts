import type { BounceInput } from '../bounces/queries.js';
import { recordBounce } from '../bounces/record.js';
import { replyClassStatus } from '../bounces/status-code.js';
import type { Container } from '../container.js';
import { describeDatabaseError, isDatabaseUnavailable } from '../db/unavailable.js';
import type { DeliverJob } from '../queues/contract.js';
import type { DeliverOutcome } from '../shared/statuses.js';
import type { Logger } from '../log.js';
import { ClaimBatcher } from './claim-batcher.js';
import { ClaimKeeper, renewalIntervalMs } from './claim-keeper.js';
import { SendCopies } from './prepare-copy.js';
import { classifySmtpError, type SmtpFailure } from './classify-smtp-error.js';
import { markCancelled, markFailed, releaseMessage, type Claim } from './queries.js';
import { SmtpUtf8Unavailable } from './mailer.js';
import { RelayPacer, UNANSWERED_FOR_MS, UNAVAILABLE_AFTER } from './relay-pacing.js';
import type { StatusWriter } from './status-writer.js';

/** What the worker's job tells the deliverer about retries. */
export type Attempt = { isLast: boolean };

/**
 * The relay refused a run of transactions (see relay-pacing.ts): the whole queue waits for it
 * (the job goes back to waiting, no attempt spent; its message, if claimed, is queued again).
 */
export class RelayUnavailable extends Error {
  constructor(readonly failure: SmtpFailure | undefined) {
    super(`SMTP relay unavailable${failure ? `: ${failure.response}` : ''}`);
  }
}

/**
 * The relay refused this one transaction (throttled, or one relay-level failure): the message is
 * queued again and its job delayed, with no attempt spent and no bounce. Nobody's fault.
 */
export class MessageBackedOff extends Error {
  constructor(readonly failure: SmtpFailure) {
    super(`SMTP ${failure.kind === 'throttled' ? 'throttled' : 'relay failure'}: ${failure.response}`);
  }
}

/**
 * Postgres cannot be reached (restart, failover, a cut connection): nobody's message is at
 * fault, so the job goes back to waiting like for an unavailable relay, without spending an
 * attempt. A claim taken before Postgres went away is left to recovery (SENDING_TIMEOUT_SECONDS).
 */
export class DatabaseUnavailable extends Error {
  constructor(override readonly cause: unknown) {
    super(`Postgres unavailable: ${describeDatabaseError(cause).message}`);
  }
}

/** A temporary refusal of this message: retried with backoff by BullMQ. */
export class TemporaryFailure extends Error {
  constructor(readonly failure: SmtpFailure) {
    super(`temporary SMTP failure: ${failure.response}`);
  }
}

/**
 * How long a group of claims gathers before its statement (ClaimBatcher). Fewer, larger groups:
 * in bench:send (2 workers, 20,000 readers) 0.44–0.46 commits a message with none, 0.32–0.34
 * with 2 ms, 0.22–0.24 with 5 ms, 0.16–0.17 with 10 ms, and Postgres's CPU a message fell with
 * them (10 ms against 5: 222–242 µs against 292–307, three alternated pairs); the copies'
 * latency did not grow. Not longer: a delivery holds its pacer slot while its claim gathers,
 * so the wait counts against the SMTP_POOL_SIZE slots (20 ms gave 0.13 commits, 202–207 µs).
 */
const CLAIM_GATHER_MS = 10;

/** What delivering touches: Postgres, the mailer, the settings, tokens and links, metrics, the log. */
type DelivererDeps = Pick<Container, 'pool' | 'mailer' | 'config' | 'links' | 'messageTokens' | 'metrics' | 'log'>;

/**
 * Delivers one message: claim it, submit its copy (built by SendCopies, see prepare-copy.ts),
 * record what the relay said. Submissions go through the process's RelayPacer, which paces them
 * by what the relay answers.
 */
export class Deliverer {
  readonly pacer: RelayPacer;
  private readonly copies: SendCopies;
  private readonly claims: ClaimKeeper;
  private readonly claimer: ClaimBatcher;
  /** The last refusal, for the jobs turned away while the relay is unavailable. */
  private lastRefusal: SmtpFailure | undefined;

  /** `bounced` hears of each bounce at submission (the rate guard checks the send soon after). */
  constructor(
    private readonly c: DelivererDeps,
    private readonly status: StatusWriter,
    private readonly bounced: (sendId: number) => void = () => undefined,
  ) {
    this.copies = new SendCopies(c.pool, c);
    this.claimer = new ClaimBatcher(c.pool, c.config.sendingTimeoutSeconds, { riders: () => status.takeWaiting(), gatherMs: CLAIM_GATHER_MS });
    status.carryBy(() => this.claimer.carry());
    this.claims = new ClaimKeeper(c.pool, c.log, renewalIntervalMs(c.config.sendingTimeoutSeconds));
    const max = c.config.smtpPoolSize;
    c.metrics.smtpConcurrencyLimit(max);
    this.pacer = new RelayPacer(
      { max, unavailableAfter: UNAVAILABLE_AFTER, unansweredForMs: UNANSWERED_FOR_MS },
      {
        limitChanged: (limit) => c.metrics.smtpConcurrencyLimit(limit),
        limitMovedMuch: (limit, from) => {
          if (limit < from) c.log.warn({ limit, from, max }, 'the SMTP relay is refusing transactions: fewer submissions at once');
          else c.log.info({ limit, from, max }, limit === max ? 'SMTP submissions back to full speed' : 'SMTP submissions speeding up again');
        },
      },
    );
  }

  /**
   * Claims the message and delivers it. `log` gives the job's logger (it names the job, the message
   * and the send), made only when a line is written: most deliveries write none.
   * - A slot of the pacer is taken before the claim, so no claimed message waits for one, and
   *   given back once the relay answered.
   * - From the claim until its outcome is recorded (or the claim given back) the claim is held,
   *   renewed by the ClaimKeeper, so a slow relay or a slow write never makes it look abandoned.
   * - Throws DatabaseUnavailable when Postgres cannot be reached, whatever step found out.
   */
  async deliver(job: DeliverJob, attempt: Attempt, log: () => Logger): Promise<DeliverOutcome> {
    if (!(await this.pacer.acquire())) throw new RelayUnavailable(this.lastRefusal);
    let slot = true;
    const release = () => {
      if (slot) this.pacer.release();
      slot = false;
    };
    try {
      return await this.claimAndSubmit(job, attempt, log, release);
    } finally {
      release();
    }
  }

  private async claimAndSubmit(job: DeliverJob, attempt: Attempt, log: () => Logger, release: () => void): Promise<DeliverOutcome> {
    let claim: Claim | undefined;
    try {
      claim = await this.claimer.claim(job.messageId);
      // Already submitted, claimed by a live worker, or its send is paused or cancelled.
      if (!claim) return 'not_claimed';
      this.claims.hold(claim);
      return await this.deliverClaimed(claim, attempt, log, release);
    } catch (err) {
      throw isDatabaseUnavailable(err) ? new DatabaseUnavailable(err) : err;
    } finally {
      if (claim) this.claims.drop(claim);
    }
  }

  /** Stops renewing claims: call once no delivery runs and the status writes are done. */
  close(): Promise<void> {
    return this.claims.close();
  }

  private async deliverClaimed(claim: Claim, attempt: Attempt, log: () => Logger, release: () => void): Promise<DeliverOutcome> {
    const { c } = this;
    if (claim.subscriber_status !== 'active' || !claim.email) {
      await markCancelled(c.pool, claim.id);
      return 'cancelled';
    }
    const copy = await this.copies.copyFor({ ...claim, email: claim.email });
    let response: string;
    const smtpDone = c.metrics.smtpSubmission();
    try {
      ({ response } = await c.mailer.sendRaw(copy));
      smtpDone('accepted');
      this.copies.accepted(copy);
    } catch (err) {
      smtpDone('error');
      if (err instanceof SmtpUtf8Unavailable) {
        // Nothing went out, and the next attempt would meet the same relay: failed at once,
        // with no bounce record (our relay's limit is not the reader's). Retry-failed sends it
        // once the relay offers SMTPUTF8.
        release();
        await markFailed(c.pool, claim.id, err.message);
        log().warn('message failed: the address needs SMTPUTF8, which the relay does not offer');
        return 'failed';
      }
      const failure = classifySmtpError(err);
      const refused = failure.kind === 'throttled' || failure.kind === 'relay';
      const unavailable = this.settle(refused ? 'refused' : 'answered', failure);
      release();
      return this.failed(claim, failure, unavailable, attempt, log);
    }
    this.settle('answered');
    release();
    await this.status.submitted(claim.id, response);
    return 'submitted';
  }

  /** Tells the pacer; says so once when the relay becomes unavailable, and once when it answers again. */
  private settle(result: 'answered' | 'refused', failure?: SmtpFailure): boolean {
    const was = this.pacer.unavailable;
    const unavailable = this.pacer.settle(result);
    if (unavailable && !was) {
      this.c.log.warn(
        { smtpCode: failure?.code, response: failure?.response, retryInMs: this.c.config.retryDelaySeconds * 1000 },
        'SMTP relay unavailable (a run of refusals, nothing answered for a second): every worker waits, then tries again',
      );
    } else if (was && !unavailable) {
      this.c.log.info('SMTP relay answering again: delivery goes on');
    }
    return unavailable;
  }

  /** `unavailable`: the pacer's verdict on the relay after this failure (see relay-pacing.ts). */
  private async failed(claim: Claim, failure: SmtpFailure, unavailable: boolean, attempt: Attempt, log: () => Logger): Promise<DeliverOutcome> {
    const { pool } = this.c;
    const context = { smtpCode: failure.code, enhanced: failure.enhanced };
    if (failure.kind === 'permanent') {
      const r = await this.recordRefusal(claim, 'hard', failure);
      this.bounced(claim.send_id);
      log().info({ ...context, response: failure.response }, r?.suppressed ? 'hard bounce at submission: reader suppressed' : 'hard bounce at submission');
      return 'bounced';
    }
    if (failure.kind === 'throttled' || failure.kind === 'relay') {
      // Not the reader's doing: no attempt spent, no bounce. The message waits (its job delayed),
      // or, when the relay refused a run of them, the whole queue does.
      this.c.metrics.smtpRefused(failure.kind);
      this.lastRefusal = failure;
      await releaseMessage(pool, claim.id, failure.response);
      throw unavailable ? new RelayUnavailable(failure) : new MessageBackedOff(failure);
    }
    if (attempt.isLast) {
      // A message refused for the last time is one soft bounce of its reader (not one per attempt).
      const r = await this.recordRefusal(claim, 'soft', failure);
      log().warn(
        { ...context, attempts: claim.attempts, response: failure.response },
        r?.suppressed ? "message failed after its last retry: a soft bounce, the reader's last allowed (suppressed)" : 'message failed after its last retry',
      );
      return 'failed';
    }
    await releaseMessage(pool, claim.id, failure.response);
    throw new TemporaryFailure(failure);
  }

  /** The relay's refusal as a bounce record; the same statement settles the message and applies the policy. */
  private recordRefusal(claim: Claim, type: 'hard' | 'soft', failure: SmtpFailure) {
    const { c } = this;
    const input: BounceInput = {
      type,
      source: 'smtp',
      match: { messageId: claim.id, subscriberId: claim.subscriber_id, sendId: claim.send_id, matchedBy: 'submission' },
      recipient: claim.email,
      action: 'failed',
      status: failure.enhanced ?? (failure.code ? replyClassStatus(failure.code) : null),
      diagnostic: failure.response,
      smtpResponse: failure.response,
    };
    return recordBounce(c, input);
  }
}
