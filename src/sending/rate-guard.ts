import { percent } from '../shared/format.js';
import type { AppConfig } from '../config/index.js';
import type { Container } from '../container.js';

/** What the rate guard touches: Postgres, the thresholds, the log. */
type RateGuardDeps = Pick<Container, 'pool' | 'config' | 'log'>;
import { progressOf, raiseRateAlert, type Progress, type SendRow } from './queries.js';

export type Rates = {
  /** Messages that reached an end at the relay: submitted, bounced or failed. */
  processed: number;
  /** Hard-bounced messages (at submission or by a later report) per processed message. */
  bounceRate: number;
  /** Readers who complained per processed message. */
  complaintRate: number;
  /** Why the rates are alarming, when they are and the sample is big enough; else null. */
  alert: string | null;
};

type Thresholds = Pick<AppConfig, 'bounceRateThreshold' | 'complaintRateThreshold' | 'rateGuardMinMessages'>;

/**
 * A send's bounce and complaint rates and whether they pass the thresholds (given in %). Below
 * RATE_GUARD_MIN_MESSAGES processed messages nothing is alarming yet: the first message of a send
 * bouncing is a 100 % rate and says nothing.
 */
export function ratesOf(p: Progress, t: Thresholds): Rates {
  const processed = p.submitted + p.bounced + p.failed;
  const bounceRate = processed ? p.bounced / processed : 0;
  const complaintRate = processed ? p.complaints / processed : 0;
  let alert: string | null = null;
  if (processed >= t.rateGuardMinMessages) {
    if (complaintRate * 100 > t.complaintRateThreshold) {
      alert = `complaint rate ${percent(complaintRate)} passed ${t.complaintRateThreshold} % (${p.complaints} of ${processed} messages)`;
    } else if (bounceRate * 100 > t.bounceRateThreshold) {
      alert = `bounce rate ${percent(bounceRate)} passed ${t.bounceRateThreshold} % (${p.bounced} of ${processed} messages)`;
    }
  }
  return { processed, bounceRate, complaintRate, alert };
}

/**
 * Checks one send's rates; the first time they pass a threshold, records the alert, logs a
 * warning and (PAUSE_ON_HIGH_RATES, on by default) pauses the send for the editor to decide.
 */
export async function guardSend(c: RateGuardDeps, sendId: number): Promise<void> {
  const rates = ratesOf(await progressOf(c.pool, sendId), c.config);
  if (!rates.alert) return;
  const raised = await raiseRateAlert(c.pool, sendId, rates.alert, c.config.pauseOnHighRates);
  if (!raised) return;
  const paused = raised.status === 'paused';
  c.log.warn(
    { sendId, issueId: raised.issue_id, bounceRate: rates.bounceRate, complaintRate: rates.complaintRate, paused },
    `send ${sendId}: ${rates.alert}${paused ? '; paused for the editor to decide (resume to go on)' : ''}`,
  );
}

/** The supervisor's pass over the sends it found unfinished. */
export async function guardSends(c: RateGuardDeps, sends: readonly SendRow[]): Promise<void> {
  for (const send of sends) {
    if (send.status === 'sending' && !send.rate_alert) await guardSend(c, send.id);
  }
}

/**
 * Checks a send soon after a bounce at submission, at most once a second per send, so a send that
 * bounces heavily is paused within about a second rather than at the supervisor's next pass.
 */
export class RateGuard {
  private readonly due = new Map<number, NodeJS.Timeout>();
  private readonly running = new Set<Promise<void>>();

  constructor(
    private readonly c: RateGuardDeps,
    private readonly delayMs = 1000,
  ) {}

  bounced(sendId: number): void {
    if (this.due.has(sendId)) return;
    const timer = setTimeout(() => {
      this.due.delete(sendId);
      const run = guardSend(this.c, sendId)
        .catch((err) => this.c.log.warn({ sendId, err: (err as Error).message }, 'rate check failed; the supervisor will check again'))
        .finally(() => this.running.delete(run));
      this.running.add(run);
    }, this.delayMs);
    timer.unref();
    this.due.set(sendId, timer);
  }

  async close(): Promise<void> {
    for (const timer of this.due.values()) clearTimeout(timer);
    this.due.clear();
    await Promise.all([...this.running]);
  }
}
