// An issue's life through its send (issue 14): one `state` on the issue, scheduling only in the
// future, moving and taking back a scheduled send (and its race with the start), a cancelled
// send that mailed nobody leaving a draft, the audience and its confirmation, failed messages
// sent again, and the listing of a send's messages.
import { describe, expect, it } from '@jest/globals';
import { audienceMoved } from '../../src/sending/control.js';
import { finishIfDone, forgetUnmailed, retryFailed, startScheduled, unscheduleSend } from '../../src/sending/queries.js';
import { useTestContext, type TestContext } from '../support/context.js';
import { copiesOf, editor, until, workersIdle, type Issue } from '../support/editor.js';
import { addReaders } from '../support/readers.js';
import { messageCounts, someoneWaitsForLock } from '../support/send-checks.js';
import { withSendWorld } from '../support/send-world.js';

type IssueWithState = Issue & { state: string; scheduledAt: string | null };

function helpers(t: TestContext) {
  const ed = editor(t);
  return {
    ...ed,
    issue: async (id: number) => (await ed.api('GET', `/api/issues/${id}`)).json() as IssueWithState,
    future: (ms = 3600_000) => new Date(Date.now() + ms).toISOString(),
    sendRows: async (issueId: number) => (await t.c.pool.query('SELECT * FROM sends WHERE issue_id = $1', [issueId])).rows,
    fanoutJob: (sendId: number) => t.c.queues.fanout.getJob(`send-${sendId}`),
    archived: async (slug: string) => (await t.app.inject({ method: 'GET', url: `/issues/${slug}`, headers: { accept: 'application/json' } })).statusCode,
  };
}

describe('audienceMoved: more than max(10 readers, 1 %)', () => {
  it('tolerates 10 readers on a small list and 1 % on a large one, either way', () => {
    expect(audienceMoved(100, 110)).toBe(false);
    expect(audienceMoved(100, 111)).toBe(true);
    expect(audienceMoved(111, 100)).toBe(true);
    expect(audienceMoved(100_000, 101_000)).toBe(false);
    expect(audienceMoved(100_000, 101_011)).toBe(true);
    expect(audienceMoved(0, 10)).toBe(false);
  });
});

describe('states and transitions without a worker (nothing is mailed)', () => {
  const t = useTestContext();
  const h = helpers(t);

  it('a draft is draft; a scheduled send makes it scheduled with scheduledAt; the list filters by state', async () => {
    const issue = await h.createIssue('Scheduled then listed');
    expect(await h.issue(issue.id)).toMatchObject({ state: 'draft', status: 'draft', scheduledAt: null });
    const at = h.future();
    const p = await h.trigger(issue.id, { scheduledAt: at });
    expect(p).toMatchObject({ status: 'scheduled', scheduledAt: at, issueState: 'scheduled' });
    expect(await h.issue(issue.id)).toMatchObject({ state: 'scheduled', scheduledAt: at, publishedAt: null });
    const listed = (await h.api('GET', '/api/issues?state=scheduled')).json() as { items: IssueWithState[] };
    expect(listed.items.map((i) => i.id)).toEqual([issue.id]);
    expect((await h.api('GET', '/api/issues?state=nonsense')).statusCode).toBe(400);

    // What a scheduled issue refuses: edits, deletion, publishing, the controls of a running send.
    expect((await h.api('PATCH', `/api/issues/${issue.id}`, { subject: 'Changed' })).statusCode).toBe(409);
    expect((await h.api('DELETE', `/api/issues/${issue.id}`)).statusCode).toBe(409);
    for (const action of ['publish', 'unpublish']) {
      const res = await h.api('POST', `/api/issues/${issue.id}/${action}`);
      expect([action, res.statusCode, res.json().error.code]).toEqual([action, 409, 'send_in_progress']);
    }
    for (const [action, code] of [
      ['pause', 'not_sending'],
      ['resume', 'not_paused'],
      ['retry-failed', 'not_started'],
    ] as const) {
      const res = await h.api('POST', `/api/issues/${issue.id}/send/${action}`);
      expect([action, res.statusCode, res.json().error.code]).toEqual([action, 409, code]);
    }
    expect(await h.issue(issue.id)).toMatchObject({ state: 'scheduled' });
  });

  it('refuses a scheduledAt in the past with 400 scheduled_in_past naming the time and now, in UTC, and creates nothing', async () => {
    const issue = await h.createIssue('Mistyped year');
    const res = await h.api('POST', `/api/issues/${issue.id}/send`, { scheduledAt: '2020-01-01T09:00:00Z' });
    expect(res.statusCode).toBe(400);
    const err = res.json().error;
    expect(err.code).toBe('scheduled_in_past');
    expect(err.message).toMatch(/^scheduledAt 2020-01-01T09:00:00\.000Z is in the past: it is now \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z \(UTC\)/);
    expect(await h.sendRows(issue.id)).toEqual([]);
    expect(await h.issue(issue.id)).toMatchObject({ state: 'draft' });
  });

  it('reschedules a scheduled send (its delayed job moves), refuses the past, and unschedules it back to an editable, deletable draft', async () => {
    const issue = await h.createIssue('Moved then taken back');
    const p = await h.trigger(issue.id, { scheduledAt: h.future(3600_000) });
    const job = await h.fanoutJob(p.id);
    expect(await job!.isDelayed()).toBe(true);

    const later = h.future(7200_000);
    const moved = await h.api('PATCH', `/api/issues/${issue.id}/send`, { scheduledAt: later });
    expect([moved.statusCode, moved.json().scheduledAt, moved.json().status]).toEqual([200, later, 'scheduled']);
    const movedJob = await h.fanoutJob(p.id);
    expect(await movedJob!.isDelayed()).toBe(true);
    // The job is due at the new time (give or take the time the request took).
    expect(Math.abs(movedJob!.timestamp + movedJob!.delay - Date.parse(later))).toBeLessThan(5000);
    expect(await h.issue(issue.id)).toMatchObject({ state: 'scheduled', scheduledAt: later });

    const past = await h.api('PATCH', `/api/issues/${issue.id}/send`, { scheduledAt: '2021-05-05T05:05:05Z' });
    expect([past.statusCode, past.json().error.code]).toEqual([400, 'scheduled_in_past']);
    expect((await h.api('PATCH', `/api/issues/${issue.id}/send`, {})).statusCode).toBe(400);
    expect(await h.issue(issue.id)).toMatchObject({ scheduledAt: later });

    const taken = await h.api('DELETE', `/api/issues/${issue.id}/send`);
    expect([taken.statusCode, taken.json()]).toEqual([200, { issueId: issue.id, sendId: p.id, scheduledAt: later, issueState: 'draft' }]);
    expect(await h.fanoutJob(p.id)).toBeUndefined();
    expect(await h.sendRows(issue.id)).toEqual([]);
    expect(await h.issue(issue.id)).toMatchObject({ state: 'draft', scheduledAt: null, publishedAt: null });
    expect((await h.api('GET', `/api/issues/${issue.id}/send`)).statusCode).toBe(404);
    for (const [method, body] of [
      ['DELETE', undefined],
      ['PATCH', { scheduledAt: later }],
    ] as const) {
      expect((await h.api(method, `/api/issues/${issue.id}/send`, body)).json().error.code).toBe('not_found');
    }

    // A draft again: editable, schedulable again (a new send), deletable.
    expect((await h.api('PATCH', `/api/issues/${issue.id}`, { subject: 'Edited after unscheduling' })).statusCode).toBe(200);
    const again = await h.trigger(issue.id, { scheduledAt: h.future() });
    expect(again.id).not.toBe(p.id);
    expect((await h.api('DELETE', `/api/issues/${issue.id}/send`)).statusCode).toBe(200);
    expect((await h.api('DELETE', `/api/issues/${issue.id}`)).statusCode).toBe(204);
    expect((await h.api('DELETE', `/api/issues/${999_999}/send`)).json().error).toMatchObject({ code: 'not_found', message: 'issue not found' });
  });

  it('a scheduled send cancelled is gone: the issue is a draft again, editable', async () => {
    const issue = await h.createIssue('Cancelled while scheduled');
    const p = await h.trigger(issue.id, { scheduledAt: h.future() });
    const res = await h.control(issue.id, 'cancel');
    expect([res.status, res.body.status, res.body.issueState]).toEqual([200, 'cancelled', 'draft']);
    expect(await h.sendRows(issue.id)).toEqual([]);
    expect(await h.fanoutJob(p.id)).toBeUndefined();
    expect(await h.issue(issue.id)).toMatchObject({ state: 'draft' });
    expect((await h.api('PATCH', `/api/issues/${issue.id}`, { subject: 'Editable again' })).statusCode).toBe(200);
  });

  it('a started send cancelled before any submission leaves a draft (out of the archive again); one published before stays published', async () => {
    await addReaders(t, [{ email: 'one@example.com' }, { email: 'two@example.com' }]);
    const issue = await h.createIssue('Started, cancelled, nobody mailed');
    await h.trigger(issue.id);
    expect(await h.issue(issue.id)).toMatchObject({ state: 'sending', status: 'published' });
    expect(await h.archived(issue.slug)).toBe(200);
    // No worker: the fan-out has not run, nothing is queued, nothing was mailed.
    const res = await h.control(issue.id, 'cancel');
    expect([res.status, res.body.issueState]).toEqual([200, 'draft']);
    expect(await h.issue(issue.id)).toMatchObject({ state: 'draft', status: 'draft', publishedAt: null });
    expect(await h.archived(issue.slug)).toBe(404);

    const published = await h.createIssue('Published first, then sent and cancelled');
    await h.publish(published.id);
    await h.trigger(published.id);
    // Messages written (as the fan-out would) and cancelled with the send: still nobody mailed.
    await t.c.pool.query(
      `INSERT INTO messages (send_id, subscriber_id) SELECT s.id, r.id FROM sends s, subscribers r WHERE s.issue_id = $1 AND r.status = 'active'`,
      [published.id],
    );
    await t.c.pool.query('UPDATE sends SET total = 2 WHERE issue_id = $1', [published.id]);
    const cancelled = await h.control(published.id, 'cancel');
    expect(cancelled.body).toMatchObject({ issueState: 'published', cancelled: 2, submitted: 0 });
    expect(await h.issue(published.id)).toMatchObject({ state: 'published', status: 'published' });
    expect(await h.sendRows(published.id)).toEqual([]);
    expect((await t.c.pool.query('SELECT count(*)::int AS n FROM messages')).rows[0].n).toBe(0);
  });

  it('the audience: GET counts the active readers; expectAudience off by more than max(10, 1 %) is 409 audience_changed with the count, and sends nothing', async () => {
    await addReaders(t, [
      ...Array.from({ length: 20 }, (_, i) => ({ email: `aud${i}@example.com` })),
      { email: 'aud-pending@example.com', status: 'pending' as const },
      { email: 'aud-gone@example.com', status: 'unsubscribed' as const },
    ]);
    const { rows } = await t.c.pool.query(`SELECT count(*)::int AS n FROM subscribers WHERE status = 'active'`);
    const active = rows[0].n as number;
    const issue = await h.createIssue('Audience confirmed');
    const aud = await h.api('GET', `/api/issues/${issue.id}/audience`);
    expect([aud.statusCode, aud.json()]).toEqual([200, { audience: active }]);
    expect((await h.api('GET', '/api/issues/999999/audience')).statusCode).toBe(404);

    const off = await h.api('POST', `/api/issues/${issue.id}/send`, { expectAudience: active - 11 });
    expect(off.statusCode).toBe(409);
    expect(off.json().error).toMatchObject({ code: 'audience_changed', details: { audience: active } });
    expect(off.json().error.message).toContain(`${active} readers`);
    expect(await h.sendRows(issue.id)).toEqual([]);
    expect((await h.api('POST', `/api/issues/${issue.id}/send`, { expectAudience: -1 })).statusCode).toBe(400);

    const close = await h.api('POST', `/api/issues/${issue.id}/send`, { expectAudience: active - 10, scheduledAt: h.future() });
    expect([close.statusCode, close.json().status]).toEqual([202, 'scheduled']);
  });

  it('the messages listing: 404 without a send, 400 for a bad status or cursor', async () => {
    const issue = await h.createIssue('No send to list');
    expect((await h.api('GET', `/api/issues/${issue.id}/send/messages`)).json().error).toMatchObject({ code: 'not_found', message: 'send not found' });
    expect((await h.api('GET', '/api/issues/999999/send/messages')).json().error).toMatchObject({ code: 'not_found', message: 'issue not found' });
    expect((await h.api('POST', `/api/issues/${issue.id}/send/retry-failed`)).statusCode).toBe(404);
    await h.trigger(issue.id, { scheduledAt: h.future() });
    for (const q of ['status=nope', 'cursor=0', 'cursor=-1', 'limit=0', 'limit=501']) {
      expect([q, (await h.api('GET', `/api/issues/${issue.id}/send/messages?${q}`)).statusCode]).toEqual([q, 400]);
    }
    expect((await h.api('GET', `/api/issues/${issue.id}/send/messages?status=failed`)).json()).toEqual({ items: [], nextCursor: null });

    // Every new route is the editor's: 401 without the token, and nothing changes.
    for (const [method, url] of [
      ['GET', `/api/issues/${issue.id}/audience`],
      ['GET', `/api/issues/${issue.id}/send/messages`],
      ['PATCH', `/api/issues/${issue.id}/send`],
      ['DELETE', `/api/issues/${issue.id}/send`],
      ['POST', `/api/issues/${issue.id}/send/retry-failed`],
    ] as const) {
      const res = await t.app.inject({ method, url, ...(method === 'PATCH' ? { payload: { scheduledAt: h.future() } } : {}) });
      expect([method, url, res.statusCode]).toEqual([method, url, 401]);
    }
    expect(await h.issue(issue.id)).toMatchObject({ state: 'scheduled' });
  });
});

describe('unschedule (and reschedule) racing the start: the row lock decides', () => {
  const t = useTestContext();
  const h = helpers(t);

  /** A send scheduled a moment ahead, then due: what the fan-out's start statement would now start. */
  async function dueSend(subject: string): Promise<{ issue: Issue; sendId: number }> {
    const issue = await h.createIssue(subject);
    const at = Date.now() + 300;
    const p = await h.trigger(issue.id, { scheduledAt: new Date(at).toISOString() });
    await until('the scheduled time to pass', () => Date.now() > at + 10);
    return { issue, sendId: p.id };
  }

  it('unschedule first: the start, waiting for the row, finds nothing to start; the issue is a draft and unpublished', async () => {
    const { issue, sendId } = await dueSend('Unschedule wins');
    const client = await t.c.pool.connect();
    try {
      await client.query('BEGIN');
      expect(await unscheduleSend(client, issue.id)).toMatchObject({ id: sendId });
      const start = startScheduled(t.c.pool, sendId);
      await someoneWaitsForLock(t);
      await client.query('COMMIT');
      expect(await start).toBeUndefined();
    } finally {
      client.release();
    }
    expect(await h.sendRows(issue.id)).toEqual([]);
    expect(await h.issue(issue.id)).toMatchObject({ state: 'draft', publishedAt: null });
  });

  it('the start first: the unschedule, waiting for the row, answers 409 not_scheduled; the issue is sending and published', async () => {
    const { issue, sendId } = await dueSend('Start wins');
    const client = await t.c.pool.connect();
    try {
      await client.query('BEGIN');
      expect(await startScheduled(client, sendId)).toMatchObject({ id: sendId, status: 'sending', published_issue: true });
      const unschedule = h.api('DELETE', `/api/issues/${issue.id}/send`);
      const reschedule = h.api('PATCH', `/api/issues/${issue.id}/send`, { scheduledAt: h.future() });
      await someoneWaitsForLock(t);
      await client.query('COMMIT');
      for (const res of [await unschedule, await reschedule]) {
        expect([res.statusCode, res.json().error.code]).toEqual([409, 'not_scheduled']);
        expect(res.json().error.message).toMatch(/^the send started at \d{4}-/);
      }
    } finally {
      client.release();
    }
    expect(await h.issue(issue.id)).toMatchObject({ state: 'sending', status: 'published' });
  });

  it('a reschedule committed first: the start re-checks the time and starts nothing', async () => {
    const { issue, sendId } = await dueSend('Reschedule wins');
    const later = h.future();
    const client = await t.c.pool.connect();
    try {
      await client.query('BEGIN');
      await client.query(`UPDATE sends SET scheduled_at = $2 WHERE id = $1 AND status = 'scheduled'`, [sendId, later]);
      const start = startScheduled(t.c.pool, sendId);
      await someoneWaitsForLock(t);
      await client.query('COMMIT');
      expect(await start).toBeUndefined();
    } finally {
      client.release();
    }
    expect(await h.issue(issue.id)).toMatchObject({ state: 'scheduled', scheduledAt: later });
  });
});

describe('a cancelled send that mailed nobody, and retry-failed racing the done check (statements, no worker)', () => {
  const t = useTestContext();
  const h = helpers(t);

  /** An issue whose send has started (publishing it) and has a message per active reader, each given its status. */
  async function sendWith(subject: string, statuses: { status: string; inDoubt?: boolean }[], sendStatus = 'cancelled') {
    const issue = await h.createIssue(subject);
    const p = await h.trigger(issue.id);
    const readers = await addReaders(
      t,
      statuses.map((_, i) => ({ email: `${issue.slug}-${i}@example.com` })),
    );
    for (const [i, m] of statuses.entries()) {
      await t.c.pool.query('INSERT INTO messages (send_id, subscriber_id, status, in_doubt) VALUES ($1, $2, $3, $4)', [
        p.id,
        readers[i]!.id,
        m.status,
        m.inDoubt ?? false,
      ]);
    }
    await t.c.pool.query(`UPDATE sends SET status = $2, fanout_done = true, total = $3 WHERE id = $1`, [p.id, sendStatus, statuses.length]);
    return { issue, sendId: p.id };
  }

  it('the supervisor forgets it once nothing is in flight: only when every message is cancelled and none in doubt', async () => {
    const inFlight = await sendWith('Cancelled, one still in flight', [{ status: 'cancelled' }, { status: 'sending' }]);
    const inDoubt = await sendWith('Cancelled, one in doubt', [{ status: 'cancelled' }, { status: 'cancelled', inDoubt: true }]);
    const reached = await sendWith('Cancelled, one submitted', [{ status: 'cancelled' }, { status: 'submitted' }]);
    const failed = await sendWith('Cancelled, one failed', [{ status: 'cancelled' }, { status: 'failed' }]);
    expect(await forgetUnmailed(t.c.pool, null)).toEqual([]);
    for (const s of [inFlight, inDoubt, reached, failed]) expect(await h.issue(s.issue.id)).toMatchObject({ state: 'cancelled', status: 'published' });

    // The message in flight is refused after the cancel (released as cancelled): nobody was mailed.
    await t.c.pool.query(`UPDATE messages SET status = 'cancelled' WHERE send_id = $1`, [inFlight.sendId]);
    expect(await forgetUnmailed(t.c.pool, null)).toEqual([{ issue_id: inFlight.issue.id, send_id: inFlight.sendId }]);
    expect(await h.issue(inFlight.issue.id)).toMatchObject({ state: 'draft', status: 'draft', publishedAt: null });
    expect(await h.sendRows(inFlight.issue.id)).toEqual([]);
    expect((await t.c.pool.query('SELECT count(*)::int AS n FROM messages WHERE send_id = $1', [inFlight.sendId])).rows[0].n).toBe(0);
    for (const s of [inDoubt, reached, failed]) expect(await h.issue(s.issue.id)).toMatchObject({ state: 'cancelled' });
  });

  it('retry-failed committed while the done check waits for the row: the send is not marked done with messages queued', async () => {
    const { issue, sendId } = await sendWith('Retry racing done', [{ status: 'submitted' }, { status: 'failed' }, { status: 'failed' }], 'sending');
    const client = await t.c.pool.connect();
    try {
      await client.query('BEGIN');
      expect(await retryFailed(client, sendId)).toMatchObject({ queued: 2, send: { status: 'sending' } });
      const done = finishIfDone(t.c.pool, sendId);
      await someoneWaitsForLock(t);
      await client.query('COMMIT');
      expect(await done).toBe(false);
    } finally {
      client.release();
    }
    expect(await messageCounts(t, sendId)).toMatchObject({ submitted: 1, queued: 2, failed: 0 });
    expect(await h.issue(issue.id)).toMatchObject({ state: 'sending' });
  });

  it('retry-failed on a paused send queues them for the resume; on a cancelled one it is 409 send_cancelled', async () => {
    const paused = await sendWith('Retry while paused', [{ status: 'failed' }], 'paused');
    const res = await h.api('POST', `/api/issues/${paused.issue.id}/send/retry-failed`);
    expect(res.json()).toMatchObject({ queued: 1, send: { status: 'paused', queued: 1, failed: 0 } });
    const cancelled = await sendWith('Retry when cancelled', [{ status: 'failed' }, { status: 'submitted' }]);
    const refused = await h.api('POST', `/api/issues/${cancelled.issue.id}/send/retry-failed`);
    expect([refused.statusCode, refused.json().error.code]).toEqual([409, 'send_cancelled']);
    expect(await messageCounts(t, cancelled.sendId)).toMatchObject({ failed: 1 });
  });
});

describe('with a worker: a scheduled send taken back mails nobody; failed messages sent again', () => {
  it('unscheduled before its time: nothing mailed when the time passes, and the issue stays a draft', async () => {
    await withSendWorld({ worker: true, readers: 5, env: { SENDING_TIMEOUT_SECONDS: '3' } }, async ({ t, relay }) => {
      const h = helpers(t);
      const issue = await h.createIssue('Taken back in time');
      const at = Date.now() + 1500;
      const p = await h.trigger(issue.id, { scheduledAt: new Date(at).toISOString() });
      expect((await h.api('DELETE', `/api/issues/${issue.id}/send`)).statusCode).toBe(200);
      // The supervisor passes every second: two passes after the time, nothing was sent or re-added.
      await until('the time to pass', () => Date.now() > at + 2500, 10_000);
      await workersIdle(t);
      expect(relay.total()).toBe(0);
      expect(await h.fanoutJob(p.id)).toBeUndefined();
      expect(await h.issue(issue.id)).toMatchObject({ state: 'draft', publishedAt: null });
    });
  }, 30_000);

  it('retry-failed queues again the failed messages of readers still active, sends them once, and the progress moves', async () => {
    let refusing = true;
    const refused = new Set(['reader2@example.com', 'reader3@example.com', 'reader4@example.com']);
    const onRcpt = (address: string) => (refusing && refused.has(address) ? { code: 452, message: '4.2.2 Mailbox full' } : undefined);
    await withSendWorld(
      { worker: true, readers: 10, relay: { onRcpt }, env: { RETRY_DELAY_SECONDS: '1', DELIVERY_ATTEMPTS: '2', SENDING_TIMEOUT_SECONDS: '3' } },
      async ({ t, relay }) => {
        const h = helpers(t);
        const issue = await h.createIssue('Some readers refused');
        const p = await h.trigger(issue.id);
        const done = await h.waitForStatus(issue.id, 'done', 30_000);
        expect(done).toMatchObject({ total: 10, submitted: 7, failed: 3, bounced: 0 });
        expect(await h.issue(issue.id)).toMatchObject({ state: 'sent' });

        // The listing names them, with the relay's answer, a page of 2 at a time.
        const seen: { email: string; status: string; smtpResponse: string; attempts: number }[] = [];
        let cursor: string | null = null;
        do {
          const res = await h.api('GET', `/api/issues/${issue.id}/send/messages?status=failed&limit=2${cursor ? `&cursor=${cursor}` : ''}`);
          expect(res.statusCode).toBe(200);
          const page = res.json() as { items: typeof seen; nextCursor: string | null };
          expect(page.items.length).toBeLessThanOrEqual(2);
          seen.push(...page.items);
          cursor = page.nextCursor;
        } while (cursor);
        expect(seen.map((m) => m.email).sort()).toEqual([...refused].sort());
        for (const m of seen) {
          expect(m).toMatchObject({ status: 'failed', attempts: 2 });
          expect(m.smtpResponse).toContain('452');
        }

        // One of them leaves meanwhile: never mailed again.
        await t.c.pool.query(`UPDATE subscribers SET status = 'unsubscribed' WHERE email = 'reader4@example.com'`);
        refusing = false;
        const before = relay.total();
        const retry = await h.api('POST', `/api/issues/${issue.id}/send/retry-failed`);
        expect(retry.statusCode).toBe(200);
        expect(retry.json()).toMatchObject({ queued: 2, send: { status: 'sending', issueState: 'sending', failed: 1 } });
        const again = await h.waitForStatus(issue.id, 'done', 30_000);
        expect(again).toMatchObject({ total: 10, submitted: 9, failed: 1, queued: 0 });
        await workersIdle(t);
        expect(relay.total() - before).toBe(2);
        expect([...relay.received.entries()].filter(([, n]) => n > 1)).toEqual([]);
        expect(relay.received.has('reader4@example.com')).toBe(false);
        expect(relay.received.get('reader2@example.com')).toBe(1);
        expect(await messageCounts(t, p.id)).toMatchObject({ submitted: 9, failed: 1 });

        // Nothing left to retry: 0, and the send stays done.
        const none = await h.api('POST', `/api/issues/${issue.id}/send/retry-failed`);
        expect(none.json()).toMatchObject({ queued: 0, send: { status: 'done' } });
        expect(copiesOf(t, p.id)).toHaveLength(0); // the relay, not the context's sink, got them
      },
    );
  }, 60_000);
});
