import { expect } from '@jest/globals';
import type { LightMyRequestResponse } from 'fastify';
import type { TestContext } from './context.js';
import { headerOf, type ReceivedMail } from './smtp-sink.js';
import { until } from './wait.js';

// `until` lives in wait.ts (no jest import, for scripts too); most tests take it from here with
// the editor's helpers.
export { until };

/**
 * Waits until the workers are at rest: no deliver job active, waiting, delayed or prioritized, no
 * fan-out job active or waiting, and no Postgres client checked out (a fan-out holds one while it
 * runs). Call it before the context's leak check, or before counting what a send left behind.
 */
export async function workersIdle(t: TestContext): Promise<void> {
  await until('the workers to go idle', async () => {
    const [d, f] = await Promise.all([
      t.c.queues.deliver.getJobCounts('active', 'waiting', 'delayed', 'prioritized'),
      t.c.queues.fanout.getJobCounts('active', 'waiting'),
    ]);
    return Object.values(d).every((n) => n === 0) && Object.values(f).every((n) => n === 0) && t.c.pool.totalCount === t.c.pool.idleCount;
  });
}

export type Method = 'GET' | 'POST' | 'PATCH' | 'DELETE';

/** An issue as the editor API returns it (`markdown` only where the route includes the source). */
export type Issue = {
  id: number;
  slug: string;
  subject: string;
  preheader: string;
  status: 'draft' | 'published';
  createdAt: string;
  updatedAt: string;
  publishedAt: string | null;
  webUrl: string;
  sections: { id: string; title: string }[];
  htmlBytes: number;
  warnings: string[];
  revision: number;
  inArchive: boolean;
  unpublishedAt: string | null;
  markdown?: string;
};

export type IssueInput = { subject: string; markdown: string; preheader?: string };

/** A send's progress, as GET /api/issues/:id/send (and the trigger and controls) return it. */
export type Progress = {
  id: number;
  issueId: number;
  status: string;
  /** The issue's state after the request (`draft` once a cancel forgot a send that mailed nobody). */
  issueState: string;
  scheduledAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  fanoutDone: boolean;
  total: number;
  queued: number;
  sending: number;
  submitted: number;
  sent: number;
  failed: number;
  bounced: number;
  cancelled: number;
  inDoubt: number;
  softBounces: number;
  complaints: number;
  bounceRate: number;
  complaintRate: number;
  rateAlert: { message: string; at: string; waived: boolean } | null;
  ratePerSecond: number;
  etaSeconds: number | null;
};

/** Copies of one send in the sink, recognised by the Feedback-ID the send puts on them. */
export function copiesOf(t: TestContext, sendId: number): ReceivedMail[] {
  return t.smtp.messages.filter((m) => (headerOf(m, 'feedback-id') ?? '').includes(`:send${sendId}:`));
}

/**
 * The editor's side of the API, authenticated with the test token. Setup steps (creating and
 * publishing an issue) throw with the response body when refused; the send steps assert their
 * status with `expect`. Safe to call at describe time: `t` is read only when a helper runs.
 */
export function editor(t: TestContext) {
  const api = (method: Method, url: string, payload?: unknown): Promise<LightMyRequestResponse> =>
    t.app.inject({ method, url, headers: t.auth, ...(payload !== undefined ? { payload: payload as object } : {}) });

  /** A draft; given only a subject, with a short Markdown body of one section. */
  const createIssue = async (input: IssueInput | string): Promise<Issue> => {
    const body = typeof input === 'string' ? { subject: input, markdown: `Intro of ${input}.\n\n## Section\n\nText.` } : input;
    const res = await api('POST', '/api/issues', body);
    if (res.statusCode !== 201) throw new Error(`POST /api/issues: ${res.statusCode} ${res.body}`);
    return res.json() as Issue;
  };

  const publish = async (id: number): Promise<Issue> => {
    const res = await api('POST', `/api/issues/${id}/publish`);
    if (res.statusCode !== 200) throw new Error(`publish: ${res.statusCode} ${res.body}`);
    return res.json() as Issue;
  };

  const trigger = async (issueId: number, body: unknown = {}): Promise<Progress> => {
    const res = await api('POST', `/api/issues/${issueId}/send`, body);
    expect([res.statusCode, res.body]).toEqual([202, expect.any(String)]);
    return res.json() as Progress;
  };

  const progress = async (issueId: number): Promise<Progress> => {
    const res = await api('GET', `/api/issues/${issueId}/send`);
    expect([res.statusCode, res.body]).toEqual([200, expect.any(String)]);
    return res.json() as Progress;
  };

  /** Fails after `timeoutMs` with the last progress seen. */
  const waitForStatus = (issueId: number, status: string, timeoutMs = 20_000): Promise<Progress> => {
    let last: Progress | undefined;
    return until(
      `send of issue ${issueId} to be ${status}`,
      async () => {
        last = await progress(issueId);
        return last.status === status && last;
      },
      timeoutMs,
      () => JSON.stringify(last),
    );
  };

  /** Pause, resume or cancel; the answer whatever its status, for the caller to check. */
  const control = async (
    issueId: number,
    action: 'pause' | 'resume' | 'cancel',
  ): Promise<{ status: number; body: Progress & { error?: { code: string } } }> => {
    const res = await api('POST', `/api/issues/${issueId}/send/${action}`);
    return { status: res.statusCode, body: res.json() };
  };

  return { api, createIssue, publish, trigger, progress, waitForStatus, control };
}
