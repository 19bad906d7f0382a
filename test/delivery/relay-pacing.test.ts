import { describe, expect, it } from '@jest/globals';
import {
  backoffDelayMs,
  FIRST_BACKOFF_MS,
  initialPacing,
  isUnavailable,
  paced,
  RelayPacer,
  slots,
  type PacingOptions,
  type PacingState,
  type SubmissionResult,
} from '../../src/delivery/relay-pacing.js';

const opts: PacingOptions = { max: 20, unavailableAfter: 10, unansweredForMs: 1000 };

/** The results one after the other, `stepMs` apart, from `from` (at time 0). */
function run(results: SubmissionResult[], from: PacingState = initialPacing(opts, 0), stepMs = 1): PacingState {
  return results.reduce((state, r, i) => paced(state, r, (i + 1) * stepMs, opts), from);
}

const times = (n: number, r: SubmissionResult): SubmissionResult[] => Array.from({ length: n }, () => r);
/** A relay that refuses every `every`-th transaction, for `n` transactions. */
const oneIn = (every: number, n: number): SubmissionResult[] => Array.from({ length: n }, (_, i) => ((i + 1) % every === 0 ? 'refused' : 'answered'));

describe('the concurrency limit (AIMD)', () => {
  it('starts at the maximum (SMTP_POOL_SIZE) and never goes above it', () => {
    expect(slots(initialPacing(opts, 0))).toBe(20);
    expect(slots(run(times(1000, 'answered')))).toBe(20);
  });

  it('falls with each refusal, never below 1', () => {
    const once = run(['refused']);
    expect(once.limit).toBeLessThan(20);
    expect(slots(once)).toBe(18);
    const many = run(times(200, 'refused'));
    expect(many.limit).toBe(1);
    expect(slots(many)).toBe(1);
  });

  it('holds near full speed while one transaction in five is refused', () => {
    // 20 % is what the chaos test and the benchmark throttle; slowing down would not make a
    // relay that refuses a fixed share refuse less.
    const state = run(oneIn(5, 5000));
    expect(slots(state)).toBeGreaterThanOrEqual(16);
  });

  it('slows down when most transactions are refused, the more so the more are', () => {
    const half = slots(run(oneIn(2, 5000)));
    const nineInTen = slots(run(Array.from({ length: 5000 }, (_, i): SubmissionResult => (i % 10 === 0 ? 'answered' : 'refused'))));
    expect(half).toBeLessThanOrEqual(12);
    expect(half).toBeGreaterThanOrEqual(6);
    expect(nineInTen).toBeLessThan(half);
    expect(nineInTen).toBeLessThanOrEqual(4);
  });

  it('comes back to full speed when the refusals stop, within a few dozen answers', () => {
    const low = run(times(200, 'refused'));
    expect(slots(low)).toBe(1);
    const answersToFull = (() => {
      let state = low;
      for (let n = 1; n <= 1000; n++) {
        state = paced(state, 'answered', n, opts);
        if (slots(state) === 20) return n;
      }
      return Infinity;
    })();
    expect(answersToFull).toBeLessThanOrEqual(30);
  });
});

describe('relay unavailable', () => {
  it('only after a run of refusals with nothing answered in between, for a second', () => {
    const at = (state: PacingState, ms: number) => isUnavailable(state, ms, opts);
    expect(at(run(times(9, 'refused')), 5000)).toBe(false);
    expect(at(run(times(10, 'refused')), 999)).toBe(false);
    expect(at(run(times(10, 'refused')), 1000)).toBe(true);
    expect(at(run([...times(9, 'refused'), 'answered', ...times(9, 'refused')]), 5000)).toBe(false);
  });

  it('not when refusals come back faster than the answers of a relay that works', () => {
    // Fifty refusals in 50 ms, then an answer: a throttling relay answering slowly, not a dead one.
    const burst = run([...times(50, 'refused'), 'answered']);
    expect(isUnavailable(burst, 51, opts)).toBe(false);
    expect(isUnavailable(run(times(50, 'refused')), 50, opts)).toBe(false);
  });

  it('not at a steady 20 % throttle, however long', () => {
    let state = initialPacing(opts, 0);
    let unavailable = 0;
    oneIn(5, 10_000).forEach((r, i) => {
      state = paced(state, r, i * 10, opts);
      if (isUnavailable(state, i * 10, opts)) unavailable++;
    });
    expect(unavailable).toBe(0);
  });

  it('ends with the first answered transaction', () => {
    const dead = run(times(50, 'refused'), initialPacing(opts, 0), 100);
    expect(isUnavailable(dead, 5000, opts)).toBe(true);
    expect(isUnavailable(paced(dead, 'answered', 5001, opts), 5001, opts)).toBe(false);
  });
});

describe('backoffDelayMs', () => {
  const cap = 5000;

  it('doubles with each back-off of the same message, up to the cap', () => {
    const top = (n: number) => backoffDelayMs(n, cap, () => 0);
    expect([0, 1, 2, 3, 4, 5, 30, 1000].map(top)).toEqual([FIRST_BACKOFF_MS, 1000, 2000, 4000, 5000, 5000, 5000, 5000]);
  });

  it('is jittered down by up to half, never past the cap', () => {
    expect(backoffDelayMs(0, cap, () => 0.999999)).toBe(FIRST_BACKOFF_MS / 2);
    expect(backoffDelayMs(10, cap, () => 0.5)).toBe(3750);
    for (let i = 0; i < 1000; i++) {
      const d = backoffDelayMs(i % 12, cap);
      expect(d).toBeGreaterThan(0);
      expect(d).toBeLessThanOrEqual(cap);
    }
  });

  it('never exceeds a cap below the first back-off', () => {
    expect(backoffDelayMs(0, 200, () => 0)).toBe(200);
  });
});

describe('RelayPacer', () => {
  it('lets through as many submissions as the limit allows; the others wait their turn', async () => {
    const pacer = new RelayPacer({ max: 2, unavailableAfter: 10, unansweredForMs: 0 });
    expect(await pacer.acquire()).toBe(true);
    expect(await pacer.acquire()).toBe(true);
    const order: number[] = [];
    const third = pacer.acquire().then((ok) => order.push(3) && ok);
    const fourth = pacer.acquire().then((ok) => order.push(4) && ok);
    await Promise.resolve();
    expect(order).toEqual([]);
    pacer.release();
    expect(await third).toBe(true);
    expect(order).toEqual([3]);
    pacer.release();
    expect(await fourth).toBe(true);
    expect(order).toEqual([3, 4]);
  });

  it('narrows as the relay refuses, and lets waiters in as it answers again', async () => {
    const changes: number[] = [];
    const pacer = new RelayPacer({ max: 4, unavailableAfter: 100, unansweredForMs: 0 }, { limitChanged: (l) => changes.push(l) });
    for (let i = 0; i < 20; i++) pacer.settle('refused');
    expect(pacer.limit).toBe(1);
    expect(changes).toEqual([3, 2, 1]);
    expect(await pacer.acquire()).toBe(true);
    let second = false;
    const waiting = pacer.acquire().then((ok) => (second = ok));
    await Promise.resolve();
    expect(second).toBe(false);
    // Still one in flight: an answer widens the gate and the waiter gets in.
    pacer.settle('answered');
    expect(pacer.limit).toBeGreaterThan(1);
    await waiting;
    expect(second).toBe(true);
  });

  it('turns the waiters away when the relay becomes unavailable, and admits again once it answers', async () => {
    let now = 0;
    const pacer = new RelayPacer({ max: 1, unavailableAfter: 3, unansweredForMs: 1000 }, {}, () => now);
    expect(await pacer.acquire()).toBe(true);
    const waiters = [pacer.acquire(), pacer.acquire()];
    pacer.settle('refused');
    pacer.settle('refused');
    pacer.settle('refused');
    // Three in a row, but the relay answered less than a second ago.
    expect(pacer.unavailable).toBe(false);
    now = 1000;
    pacer.settle('refused');
    expect(pacer.unavailable).toBe(true);
    expect(await Promise.all(waiters)).toEqual([false, false]);
    pacer.release();
    // The next one probes the relay (the queue-wide wait is the worker's business).
    expect(await pacer.acquire()).toBe(true);
    pacer.settle('answered');
    expect(pacer.unavailable).toBe(false);
    pacer.release();
  });

  it('reports a big move of the limit (halved, doubled, back to the maximum), not each step', () => {
    const moves: [number, number][] = [];
    const pacer = new RelayPacer({ max: 20, unavailableAfter: 1000, unansweredForMs: 0 }, { limitMovedMuch: (to, from) => moves.push([to, from]) });
    for (let i = 0; i < 40; i++) pacer.settle('refused');
    expect(pacer.limit).toBe(1);
    while (pacer.limit < 20) pacer.settle('answered');
    // Down by halves; up again, an answer at 1 adds 10 at once (INCREASE / limit), then to the top.
    expect(moves).toEqual([
      [10, 20],
      [5, 10],
      [2, 5],
      [1, 2],
      [11, 1],
      [20, 11],
    ]);
  });
});
