import { createInterface } from 'node:readline/promises';
import type { ApiClient } from './api-client.js';
import type { Issue, Send } from './api-types.js';
import { CliFailure, isNotFound, UsageError } from './errors.js';
import { count, when } from '../shared/format.js';
import { note, print } from './io.js';
import { findIssue } from './find-issue.js';
import { watchSend, type WatchOptions } from './watch-send.js';

export type SendOptions = WatchOptions & { at?: string; detach: boolean; yes: boolean };

/** --at as the API wants it; anything Date cannot read is a usage error, caught before any request. */
export function parseAt(raw: string, command = 'send'): string {
  // Date.parse accepts far more than ISO 8601 ("March 7"): insist on a date and a time.
  if (!/^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}/.test(raw.trim())) {
    throw new UsageError(`--at must be an ISO date and time such as 2026-11-12T09:00:00Z or 2026-11-12T10:00+01:00, got "${raw}"`, command);
  }
  const t = Date.parse(raw.trim().replace(' ', 'T'));
  if (Number.isNaN(t)) throw new UsageError(`--at is not a valid date and time: "${raw}"`, command);
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

/**
 * Asks the person at the terminal to confirm the audience (stderr, so stdout stays the result).
 * Without a terminal nobody can answer: refused, unless --yes said it beforehand.
 */
async function confirmAudience(audience: number, yes: boolean): Promise<void> {
  if (yes) return;
  if (!process.stdin.isTTY) {
    throw new CliFailure(`not sending to ${count(audience)} readers without a confirmation: stdin is not a terminal; run again with --yes to send`);
  }
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = await rl.question(`Send to ${count(audience)} readers? [y/N] `);
    if (!/^y(es)?$/i.test(answer.trim())) throw new CliFailure('Nothing was sent.');
  } finally {
    rl.close();
  }
}

/**
 * Triggers the issue's one send (now or --at), after the editor confirmed the audience, then
 * watches it unless --detach. The count the editor confirmed goes with the request
 * (expectAudience): if it moved meanwhile, the API refuses with the new number.
 */
export async function sendIssue(api: ApiClient, ref: string, opts: SendOptions): Promise<number> {
  const scheduledAt = opts.at === undefined ? undefined : parseAt(opts.at);
  const issue = await findIssue(api, ref);
  let send = await existingSend(api, issue);
  if (send && send.status !== 'cancelled') {
    // Triggering again would return this same send; say so rather than pretend to start one.
    note(`Issue ${issue.id} already has its send (${send.status}); nothing is sent twice.${scheduledAt ? ' --at is ignored.' : ''}`);
  } else {
    const { audience } = await api.request<{ audience: number }>('GET', `/api/issues/${issue.id}/audience`);
    if (send) note(`The send of issue ${issue.id} was cancelled after it reached some readers: this sends it to the ${count(audience)} it did not reach.`);
    await confirmAudience(audience, opts.yes);
    send = await api.request<Send>('POST', `/api/issues/${issue.id}/send`, {
      json: { ...(scheduledAt ? { scheduledAt } : {}), expectAudience: audience },
    });
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
  if (action === 'cancel' && (send.issueState === 'draft' || send.issueState === 'published')) {
    print(`The send of issue ${issue.id} is cancelled before it mailed anyone: ${asBefore(send.issueState)}.`);
    return 0;
  }
  print(
    `The send of issue ${issue.id} is ${send.status}: ${count(send.submitted)} of ${count(send.total)} submitted, ${count(send.queued)} queued, ${count(send.cancelled)} cancelled.`,
  );
  return 0;
}

/** Moves the issue's scheduled send to another time. */
export async function rescheduleSend(api: ApiClient, ref: string, at: string): Promise<number> {
  const scheduledAt = parseAt(at, 'reschedule');
  const issue = await findIssue(api, ref);
  const send = await api.request<Send>('PATCH', `/api/issues/${issue.id}/send`, { json: { scheduledAt } });
  print(`The send of issue ${issue.id} "${issue.subject}" now starts at ${when(send.scheduledAt)}.`);
  return 0;
}

/** What an issue is once a send that mailed nobody is gone: as it was before the send. */
function asBefore(state: string | undefined): string {
  return state === 'published' ? 'the issue is published, as it was before (in the archive, not mailed)' : 'the issue is a draft again';
}

/** Takes the issue's scheduled send back: the issue is as it was before (a draft, or published). */
export async function unscheduleSend(api: ApiClient, ref: string): Promise<number> {
  const issue = await findIssue(api, ref);
  const gone = await api.request<{ scheduledAt: string; issueState: string }>('DELETE', `/api/issues/${issue.id}/send`);
  print(
    `The send of issue ${issue.id} "${issue.subject}" planned for ${when(gone.scheduledAt)} is taken back: nothing was mailed, and ${asBefore(gone.issueState)}.`,
  );
  return 0;
}

/** Queues the send's failed messages again (readers still active only). */
export async function retryFailedSend(api: ApiClient, ref: string): Promise<number> {
  const issue = await findIssue(api, ref);
  const { queued, send } = await api.request<{ queued: number; send: Send }>('POST', `/api/issues/${issue.id}/send/retry-failed`);
  print(
    queued === 0
      ? `Nothing to retry: the send of issue ${issue.id} has no failed message of a reader still active (${count(send.failed)} failed).`
      : `Queued ${count(queued)} failed message${queued === 1 ? '' : 's'} of issue ${issue.id} again; the send is ${send.status}. Watch it with: broadside watch ${issue.slug}`,
  );
  return 0;
}
