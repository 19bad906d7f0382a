import { Writable } from 'node:stream';

export type LogCapture<L> = {
  /** Give it to createTestContext as `logTo`, or to pino as its destination. */
  stream: Writable;
  /** Everything written so far, as written. */
  text: () => string;
  /** Everything written so far, one parsed object per JSON line. */
  lines: () => L[];
};

/**
 * A log destination that keeps what it is given. Lines are parsed on each call to `lines()`,
 * from the whole text, so a line split across two writes is never parsed in halves.
 */
export function captureLog<L = Record<string, unknown>>(): LogCapture<L> {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      chunks.push(String(chunk));
      cb();
    },
  });
  const text = () => chunks.join('');
  const lines = () =>
    text()
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as L);
  return { stream, text, lines };
}
