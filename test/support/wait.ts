import { setTimeout as sleep } from 'node:timers/promises';

// Waiting on a condition with a deadline: what tests (and the benchmarks) use instead of a sleep.
// No jest import here, so scripts outside jest can use it too.

/**
 * Polls `probe` every 25 ms until it returns something truthy, and returns that; fails after
 * `timeoutMs`, with what `last` says about the state at that moment when given.
 */
export async function until<T>(
  what: string,
  probe: () => Promise<T | false | null | undefined> | T | false | null | undefined,
  timeoutMs = 20_000,
  last?: () => Promise<string> | string,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) {
      const state = last ? ` (last: ${await last()})` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${state}`);
    }
    await sleep(25);
  }
}

/** `p`, or a failure after `ms` saying `what` and the `detail` of the moment (e.g. a process's output). */
export async function withDeadline<T>(p: Promise<T>, ms: number, what: string, detail: () => string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what} within ${ms} ms\n${detail()}`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
