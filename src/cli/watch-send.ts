import { setTimeout as sleep } from 'node:timers/promises';
import type { ApiClient } from './api-client.js';
import type { Issue, Send } from './api-types.js';
import { ApiError, CliFailure, isNotFound, ServiceUnreachable } from './errors.js';
import { duration } from '../shared/format.js';
import { interactive, note, print } from './io.js';
import { BarView, LineView, summaryLine, type ProgressView } from './send-progress.js';

export type WatchOptions = {
  /** Seconds between progress lines when stdout is not a terminal. */
  intervalSeconds: number;
};

const POLL_MS = 1000;
/** How long the service may be away (restarting, say) before the watcher gives up. */
const PATIENCE_MS = 120_000;

/** Ctrl-C's exit code, as shells report it (128 + SIGINT). */
const INTERRUPTED = 130;

/**
 * Polls the issue's send until it is done (0) or cancelled (1), drawing its progress. Ctrl-C
 * stops the watching only: the send is the workers' business and goes on.
 */
export async function watchSend(api: ApiClient, issue: Issue, opts: WatchOptions): Promise<number> {
  const view: ProgressView = interactive() ? new BarView() : new LineView(opts.intervalSeconds);
  const stop = new AbortController();
  const onInterrupt = () => stop.abort();
  process.once('SIGINT', onInterrupt);
  let failingSince: number | undefined;
  try {
    for (;;) {
      let send: Send;
      try {
        send = await api.request<Send>('GET', `/api/issues/${issue.id}/send`, { signal: stop.signal, timeoutMs: 15_000 });
        if (failingSince !== undefined) note('Back in contact with the service.');
        failingSince = undefined;
      } catch (err) {
        if (stop.signal.aborted) break;
        if (isNotFound(err)) throw new ApiError(404, 'not_found', `issue ${issue.id} has no send: start one with "broadside send ${issue.slug}"`);
        const transient = err instanceof ServiceUnreachable || (err instanceof ApiError && err.status >= 500);
        if (!transient) throw err;
        if (failingSince === undefined) {
          failingSince = Date.now();
          view.stop();
          note(`Lost contact with the service (${err.message}); still trying…`);
        } else if (Date.now() - failingSince > PATIENCE_MS) {
          throw new CliFailure(`gave up watching after ${duration(PATIENCE_MS / 1000)} without an answer: ${err.message}. The send itself is not affected.`);
        }
        await sleep(POLL_MS, undefined, { signal: stop.signal }).catch(() => undefined);
        if (stop.signal.aborted) break;
        continue;
      }
      view.update(send);
      if (send.status === 'done' || send.status === 'cancelled') {
        view.stop();
        print(summaryLine(send));
        if (send.status === 'cancelled') {
          note(`The send of issue ${issue.id} was cancelled.`);
          return 1;
        }
        return 0;
      }
      await sleep(POLL_MS, undefined, { signal: stop.signal }).catch(() => undefined);
      if (stop.signal.aborted) break;
    }
    view.stop();
    note(`Stopped watching. The send goes on: see it with "broadside status ${issue.slug}", or stop it with "broadside cancel ${issue.slug}".`);
    return INTERRUPTED;
  } finally {
    view.stop();
    process.off('SIGINT', onInterrupt);
  }
}
