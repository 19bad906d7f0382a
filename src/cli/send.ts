import type { ApiClient } from './api-client.js';
import type { Issue, Send } from './api-types.js';
import { isNotFound, UsageError } from './errors.js';
import { count, when } from '../shared/format.js';
import { note, print } from './io.js';
import { findIssue } from './find-issue.js';
import { watchSend, type WatchOptions } from './watch-send.js';

export type SendOptions = WatchOptions & { at?: string; detach: boolean };

/** --at as the API wants it; anything Date cannot read is a usage error, caught before any request. */
function parseAt(raw: string): string {
  // Date.parse accepts far more than ISO 8601 ("March 7"): insist on a date and a time.
  if (!/^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}/.test(raw.trim())) {
    throw new UsageError(`--at must be an ISO date and time such as 2026-11-12T09:00:00Z or 2026-11-12T10:00+01:00, got "${raw}"`, 'send');
  }
  const t = Date.parse(raw.trim().replace(' ', 'T'));
  if (Number.isNaN(t)) throw new UsageError(`--at is not a valid date and time: "${raw}"`, 'send');
  return new Date(t).toISOString();
}

/** The issue's send, or undefined when it has none yet. */
export async function existingSend(api: ApiClient, issue: Pick<Issue, 'id'>): Promise<Send | undefined> {
  try {
    return await api.request<Send>('GET', `/api/issues/${issue.id}/send`);
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

/** Triggers the issue's one send (now or --at), then watches it unless --detach. */
export async function sendIssue(api: ApiClient, ref: string, opts: SendOptions): Promise<number> {
  const scheduledAt = opts.at === undefined ? undefined : parseAt(opts.at);
  const issue = await findIssue(api, ref);
  let send = await existingSend(api, issue);
  if (send) {
    // Triggering again would return this same send; say so rather than pretend to start one.
    note(`Issue ${issue.id} already has its send (${send.status}); nothing is sent twice.${scheduledAt ? ' --at is ignored.' : ''}`);
  } else {
    send = await api.request<Send>('POST', `/api/issues/${issue.id}/send`, { json: scheduledAt ? { scheduledAt } : {} });
    print(
      send.status === 'scheduled'
        ? `Scheduled the send of issue ${issue.id} "${issue.subject}" for ${when(send.scheduledAt)}.`
        : `Started the send of issue ${issue.id} "${issue.subject}".`,
    );
  }
  if (opts.detach) {
    print(`Watch it with: broadside watch ${issue.slug}`);
    return 0;
  }
  if (send.status === 'scheduled') {
    print(`It starts at ${when(send.scheduledAt)}. Watch it then with: broadside watch ${issue.slug}`);
    return 0;
  }
  return watchSend(api, issue, opts);
}

/** Watches the issue's send without triggering anything. */
export async function watchIssue(api: ApiClient, ref: string, opts: WatchOptions): Promise<number> {
  return watchSend(api, await findIssue(api, ref), opts);
}

/** pause, resume or cancel the issue's send. */
export async function controlSend(api: ApiClient, ref: string, action: 'pause' | 'resume' | 'cancel'): Promise<number> {
  const issue = await findIssue(api, ref);
  const send = await api.request<Send>('POST', `/api/issues/${issue.id}/send/${action}`);
  print(
    `The send of issue ${issue.id} is ${send.status}: ${count(send.submitted)} of ${count(send.total)} submitted, ${count(send.queued)} queued, ${count(send.cancelled)} cancelled.`,
  );
  return 0;
}
