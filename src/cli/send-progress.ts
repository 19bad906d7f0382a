import cliProgress from 'cli-progress';
import { finishedOf, type Send } from './api-types.js';
import { clock, count, duration, when } from './format.js';
import { print } from './io.js';

/** Shows a send's progress as the watcher polls it. */
export interface ProgressView {
  update(send: Send): void;
  /** Leaves the terminal clean for what is printed next. */
  stop(): void;
}

const counts = (s: Send): string =>
  `submitted ${count(s.submitted)}, failed ${count(s.failed)}, bounced ${count(s.bounced)}, cancelled ${count(s.cancelled)}${inDoubt(s)}`;

/** ` (3 in doubt: the relay may have them)` when a dead worker's messages were cancelled with their send. */
export const inDoubt = (s: Send): string => (s.inDoubt > 0 ? ` (${count(s.inDoubt)} in doubt: the relay may have them)` : '');

/** `4,211/10,000` (with a `+` while the fan-out is still counting the audience). */
const fraction = (s: Send): string => `${count(finishedOf(s))}/${count(s.total)}${s.fanoutDone ? '' : '+'}`;

/** `12.5/s, about 3 min left` while sending; empty otherwise. */
export const pace = (s: Send): string => {
  if (s.status !== 'sending') return '';
  return `${s.ratePerSecond}/s${s.etaSeconds !== null ? `, about ${duration(s.etaSeconds)} left` : ''}`;
};

/** One line of progress, for logs and pipes. */
function progressLine(s: Send): string {
  if (s.status === 'scheduled') return `${clock()} scheduled: starts at ${when(s.scheduledAt)}`;
  const p = pace(s);
  return `${clock()} ${s.status} ${fraction(s)} (${counts(s)})${p ? ` ${p}` : ''}`;
}

/** What the send came to, once it is done or cancelled. */
export function summaryLine(s: Send): string {
  const took = s.startedAt && s.finishedAt ? ` in ${duration((Date.parse(s.finishedAt) - Date.parse(s.startedAt)) / 1000)}` : '';
  const head = s.status === 'done' ? 'Done' : s.status === 'cancelled' ? 'Cancelled' : s.status;
  return `${head}: ${counts(s)} of ${count(s.total)} reader${s.total === 1 ? '' : 's'}${took}.`;
}

/**
 * Not a terminal: a line when the status changes and otherwise every `intervalSeconds`, so a
 * log of a long send stays readable.
 */
export class LineView implements ProgressView {
  private lastAt = 0;
  private lastStatus = '';

  constructor(private readonly intervalSeconds: number) {}

  update(s: Send): void {
    const now = Date.now();
    if (s.status === this.lastStatus && now - this.lastAt < this.intervalSeconds * 1000) return;
    this.lastAt = now;
    this.lastStatus = s.status;
    print(progressLine(s));
  }

  stop(): void {}
}

/** A terminal: a bar redrawn in place. */
export class BarView implements ProgressView {
  private readonly bar = new cliProgress.SingleBar({
    // Truncated at the terminal's width (linewrap): the most telling parts come first.
    format: '{state} [{bar}] {percentage}% {fraction} | {counts} | {pace}',
    stream: process.stdout,
    barsize: 20,
    hideCursor: true,
    emptyOnZero: true,
    linewrap: true,
    // Ctrl-C is ours: the watcher stops the bar, then says that the send goes on.
    gracefulExit: false,
  });
  private started = false;

  update(s: Send): void {
    const payload = {
      state: s.status === 'scheduled' ? `scheduled (${when(s.scheduledAt)})` : s.status,
      fraction: fraction(s),
      counts: counts(s),
      pace: pace(s) || '—',
    };
    if (!this.started) {
      this.bar.start(s.total, finishedOf(s), payload);
      this.started = true;
      return;
    }
    this.bar.setTotal(s.total);
    this.bar.update(finishedOf(s), payload);
  }

  stop(): void {
    if (this.started) this.bar.stop();
    this.started = false;
  }
}
