// The send's progress bar as a line of text: fitted to the terminal's width, the most telling
// parts kept (state, bar, percentage and count, time left), the rest dropped as room runs out.
import { describe, expect, it } from '@jest/globals';
import type { Send } from '../../src/cli/api-types.js';
import { barLine } from '../../src/cli/send-progress.js';

const sending = {
  status: 'sending',
  scheduledAt: '2026-11-12T09:00:00.000Z',
  startedAt: '2026-11-12T09:00:00.000Z',
  finishedAt: null,
  fanoutDone: true,
  total: 10_000,
  queued: 5_700,
  sending: 50,
  submitted: 4_211,
  sent: 4_211,
  failed: 3,
  bounced: 36,
  cancelled: 0,
  ratePerSecond: 12.5,
  etaSeconds: 456,
} as Send;

/** A million readers, thousands failed, a day left, a fan-out still counting: the longest line. */
const huge = {
  ...sending,
  fanoutDone: false,
  total: 1_000_000,
  submitted: 421_100,
  failed: 1_234,
  bounced: 56_789,
  cancelled: 12_345,
  ratePerSecond: 1234.5,
  etaSeconds: 86_000,
} as Send;

describe('the progress bar line', () => {
  it('fits 80 columns and keeps the time left, for a small send and for a million readers', () => {
    for (const s of [sending, huge]) {
      const line = barLine(s, 80);
      expect([line, line.length <= 79]).toEqual([line, true]);
      expect(line).toMatch(/^sending \[=+-+\] 4\d% /);
      expect(line).toMatch(/ left( ·|$)/);
    }
    expect(barLine(sending, 80)).toBe('sending [=====------] 42% 4,250/10,000 · 7 min 36 s left · 3 failed, 36 bounced');
  });

  it('shows the rate when the terminal is wide enough, and drops it first when it is not', () => {
    expect(barLine(sending, 120)).toBe('sending [=============-----------------] 42% 4,250/10,000 · 7 min 36 s left · 3 failed, 36 bounced · 12.5/s');
    expect(barLine(huge, 80)).not.toContain('/s');
    expect(barLine(huge, 80)).not.toContain('failed');
    expect(barLine(huge, 120)).toContain('1,234 failed, 56,789 bounced, 12,345 cancelled');
  });

  it('is never wider than the terminal (down to 20 columns), however narrow', () => {
    for (const width of [20, 40, 60, 79, 80, 81, 100, 200]) {
      for (const s of [sending, huge]) expect(barLine(s, width).length).toBeLessThanOrEqual(Math.max(20, width - 1));
    }
  });

  it('says when a scheduled send starts, and ends full when done', () => {
    expect(barLine({ ...sending, status: 'scheduled', submitted: 0, failed: 0, bounced: 0, fanoutDone: false, total: 0 } as Send, 80)).toBe(
      'scheduled, starts 2026-11-12 09:00:00 UTC [---------------------------] 0% 0/0+',
    );
    expect(barLine({ ...sending, status: 'done', queued: 0, sending: 0, submitted: 9_961, failed: 3, bounced: 36 } as Send, 80)).toBe(
      'done [==============================] 100% 10,000/10,000 · 3 failed, 36 bounced',
    );
  });
});
