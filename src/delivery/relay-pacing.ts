// How fast a worker process submits to the relay, and when the relay counts as unavailable.
//
// The relay's answers drive two things:
// - a limit on concurrent submissions, AIMD: every refusal (a throttled transaction or a
//   relay-level failure) takes a share of the limit away, every answered transaction gives a
//   little back, so repeated throttling slows the process down and quiet brings it back to
//   full speed (SMTP_POOL_SIZE);
// - a count of refusals in a row: one refusal backs off one message; only a run of them with
//   no transaction answered in between, for a while, makes the relay unavailable, and the
//   queue waits.
// The rules are pure functions of the state (`paced`); RelayPacer applies them around the
// submissions of one process.

export type PacingOptions = {
  /** The highest limit, and where it starts: SMTP_POOL_SIZE (more would only queue in the pool). */
  max: number;
  /** Refusals in a row, with no transaction answered in between, that make the relay unavailable… */
  unavailableAfter: number;
  /** …once the relay has answered nothing for this long either. */
  unansweredForMs: number;
};

export type PacingState = {
  /** Concurrent submissions allowed; a real number, its whole part is what counts. */
  limit: number;
  /** Refusals since the relay last answered a transaction. */
  refusedInARow: number;
  /** When the relay last answered a transaction (or when pacing began), in ms. */
  answeredAt: number;
};

/**
 * `answered`: the relay took the transaction to its end (250, or a refusal of this recipient
 * or message: it is working). `refused`: throttled, or the relay could not be used.
 */
export type SubmissionResult = 'answered' | 'refused';

/**
 * Refusals in a row that make the relay unavailable: fewer than the submissions in flight when a
 * relay restarts…
 */
export const UNAVAILABLE_AFTER = 10;
/**
 * …and with nothing answered for this long. Refusals come back fast (a 421 to MAIL FROM) and
 * answers slowly (after the message's data), so a working relay that throttles can refuse ten in
 * a row between two answers; it does not go a second without answering one.
 */
export const UNANSWERED_FOR_MS = 1000;

/** A refusal takes this share of the limit away. */
export const DECREASE = 0.1;
/**
 * An answered transaction adds INCREASE / limit: INCREASE per limit's worth of answers. At the
 * full limit of 20, a refusal costs 2 and an answer gives 0.5: the limit holds while about one
 * transaction in five is refused, and falls when more are (at a steady refused share p it
 * settles near sqrt(INCREASE (1 − p) / (DECREASE p)): 10 at p = 1/2, 3 at p = 9/10). From 1 back
 * to 20 takes about 20 answers.
 */
export const INCREASE = 10;

export const initialPacing = (opts: PacingOptions, now: number): PacingState => ({ limit: opts.max, refusedInARow: 0, answeredAt: now });

export function paced(state: PacingState, result: SubmissionResult, now: number, opts: PacingOptions): PacingState {
  if (result === 'answered') return { limit: Math.min(opts.max, state.limit + INCREASE / state.limit), refusedInARow: 0, answeredAt: now };
  return { limit: Math.max(1, state.limit * (1 - DECREASE)), refusedInARow: state.refusedInARow + 1, answeredAt: state.answeredAt };
}

export const isUnavailable = (state: PacingState, now: number, opts: PacingOptions): boolean =>
  state.refusedInARow >= opts.unavailableAfter && now - state.answeredAt >= opts.unansweredForMs;

/** Submissions allowed at once. */
export const slots = (state: PacingState): number => Math.max(1, Math.floor(state.limit));

/** The first back-off of a message; each further one doubles, up to the cap. */
export const FIRST_BACKOFF_MS = 500;

/**
 * How long a message waits after its `backoffs`-th refusal (0 for the first): doubling from
 * FIRST_BACKOFF_MS up to `capMs`, then jittered down by up to half, so the messages refused
 * together do not come back together.
 */
export function backoffDelayMs(backoffs: number, capMs: number, random: () => number = Math.random): number {
  const ceiling = Math.min(capMs, FIRST_BACKOFF_MS * 2 ** Math.min(Math.max(0, backoffs), 30));
  return Math.round(ceiling * (1 - random() / 2));
}

export type PacerEvents = {
  /** The whole-number limit moved. */
  limitChanged?(limit: number): void;
  /** The limit halved or doubled since the last time this was called, or came back to the maximum. */
  limitMovedMuch?(limit: number, from: number): void;
};

/**
 * One process's pacing: a gate with the AIMD limit as its width. `acquire` before a submission
 * (a waiter keeps its place: first come, first served), `release` after it, `settle` with what
 * the relay said. Waiters are turned away (`acquire` gives false) when the relay becomes
 * unavailable, so a queue that must wait does not send them one by one into a dead relay.
 */
export class RelayPacer {
  private state: PacingState;
  private inFlight = 0;
  private readonly waiters: ((granted: boolean) => void)[] = [];
  private loggedSlots: number;
  private unavailableNow = false;

  constructor(
    private readonly opts: PacingOptions,
    private readonly events: PacerEvents = {},
    private readonly now: () => number = Date.now,
  ) {
    this.state = initialPacing(opts, now());
    this.loggedSlots = slots(this.state);
  }

  get limit(): number {
    return slots(this.state);
  }

  /** As of the last settle: it takes a refusal to find the relay unavailable, an answer to end it. */
  get unavailable(): boolean {
    return this.unavailableNow;
  }

  /** Resolves true with a slot, or false when the relay became unavailable while waiting. */
  acquire(): Promise<boolean> {
    if (this.inFlight < slots(this.state)) {
      this.inFlight++;
      return Promise.resolve(true);
    }
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  release(): void {
    this.inFlight--;
    this.admit();
  }

  /** Records what the relay said; true when the relay is now unavailable. */
  settle(result: SubmissionResult): boolean {
    const before = slots(this.state);
    this.state = paced(this.state, result, this.now(), this.opts);
    const after = slots(this.state);
    if (after !== before) {
      this.events.limitChanged?.(after);
      if (after <= this.loggedSlots / 2 || after >= this.loggedSlots * 2 || (after === this.opts.max && this.loggedSlots !== after)) {
        this.events.limitMovedMuch?.(after, this.loggedSlots);
        this.loggedSlots = after;
      }
    }
    const unavailable = isUnavailable(this.state, this.now(), this.opts);
    this.unavailableNow = unavailable;
    if (unavailable) {
      for (const waiter of this.waiters.splice(0)) waiter(false);
    } else {
      this.admit();
    }
    return unavailable;
  }

  private admit(): void {
    while (this.waiters.length > 0 && this.inFlight < slots(this.state)) {
      this.inFlight++;
      this.waiters.shift()!(true);
    }
  }
}
