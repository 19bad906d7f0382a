import cliProgress from 'cli-progress';
import { finishedOf, type Send } from './api-types.js';
import { clock, count, duration, when } from '../shared/format.js';
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

/** The bar's width bounds, in columns. */
const MIN_BAR = 10;
const MAX_BAR = 30;

/**
 * The bar's line for a terminal `width` columns wide, the most telling parts first: the state,
 * the bar, the percentage and count, the time left; then the failures and the rate, each only
 * when it fits (the least telling dropped first: the rate, then the failures). Never wider than
 * `width - 1`: a line filling the last column wraps on some terminals and breaks the redraw.
 */
export function barLine(s: Send, width: number): string {
  const max = Math.max(20, width - 1);
  const state = s.status === 'scheduled' ? `scheduled, starts ${when(s.scheduledAt)}` : s.status;
  const finished = finishedOf(s);
  const ratio = s.total > 0 ? Math.min(1, finished / s.total) : s.status === 'done' ? 1 : 0;
  const head = `${Math.floor(ratio * 100)}% ${fraction(s)}`;
  const sending = s.status === 'sending';
  const problems = [
    s.failed ? `${count(s.failed)} failed` : '',
    s.bounced ? `${count(s.bounced)} bounced` : '',
    s.cancelled ? `${count(s.cancelled)} cancelled` : '',
  ]
    .filter(Boolean)
    .join(', ');
  const extras = [sending && s.etaSeconds !== null ? `${duration(s.etaSeconds)} left` : '', problems, sending ? `${s.ratePerSecond}/s` : ''].filter(Boolean);
  for (;;) {
    const tail = [head, ...extras].join(' · ');
    const room = max - state.length - ' [] '.length - tail.length;
    if (room >= MIN_BAR || extras.length === 0) {
      const size = Math.max(MIN_BAR, Math.min(MAX_BAR, room));
      const full = Math.round(ratio * size);
      return `${state} [${'='.repeat(full)}${'-'.repeat(size - full)}] ${tail}`.slice(0, max);
    }
    extras.pop();
  }
}

/** A terminal: a bar redrawn in place, fitted to the terminal's width as it is now. */
export class BarView implements ProgressView {
  private send: Send | undefined;
  private readonly bar = new cliProgress.SingleBar({
    // cli-progress passes the terminal's width (maxWidth) on every redraw.
    format: (_options, params) => (this.send ? barLine(this.send, params.maxWidth) : ''),
    stream: process.stdout,
    hideCursor: true,
    // Ctrl-C is ours: the watcher stops the bar, then says that the send goes on.
    gracefulExit: false,
  });
  private started = false;

  update(s: Send): void {
    this.send = s;
    if (!this.started) {
      this.bar.start(s.total, finishedOf(s));
      this.started = true;
      return;
    }
    this.bar.setTotal(s.total);
    this.bar.update(finishedOf(s));
  }

  stop(): void {
    if (this.started) this.bar.stop();
    this.started = false;
  }
}
