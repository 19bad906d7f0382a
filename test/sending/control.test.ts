import { setTimeout as sleep } from 'node:timers/promises';
import { beforeAll, describe, expect, it } from '@jest/globals';
import { Redis } from 'ioredis';
import { REDIS_URL, useTestContext, type TestContext } from '../support/context.js';
import { copiesOf, editor, until, workersIdle, type Issue } from '../support/editor.js';
import { addReaders, type Reader } from '../support/readers.js';
import type { ReceivedMail } from '../support/smtp-sink.js';

function helpers(t: TestContext) {
  return {
    ...editor(t),
    /** `n` active readers, `<tag>-<i>@example.com` named "Reader <i>", i from 1, in that order. */
    addNumberedReaders: (n: number, tag: string): Promise<Reader[]> =>
      addReaders(
        t,
        Array.from({ length: n }, (_, k) => ({ email: `${tag}-${k + 1}@example.com`, name: `Reader ${k + 1}` })),
      ),
    copiesOf: (sendId: number) => copiesOf(t, sendId),
    async statusCounts(sendId: number): Promise<Record<string, number>> {
      const { rows } = await t.c.pool.query('SELECT status::text, count(*)::int AS n FROM messages WHERE send_id = $1 GROUP BY 1', [sendId]);
      return Object.fromEntries(rows.map((r) => [r.status, r.n]));
    },
  };
}

/** How many copies each recipient got. */
function perRecipient(copies: ReceivedMail[]): Map<string, number> {
  const n = new Map<string, number>();
  for (const m of copies) for (const r of m.recipients) n.set(r, (n.get(r) ?? 0) + 1);
  return n;
}

describe('pause, resume and cancel at 20 messages per second', () => {
  const SEND_RATE = 20;
  const t = useTestContext({ worker: true, env: { SEND_RATE: String(SEND_RATE), SEND_WINDOW: '10' } });
  const h = helpers(t);
  let readers: { id: number; email: string }[];
  let paused: Issue;
  let cancelled: Issue;

  beforeAll(async () => {
    readers = await h.addNumberedReaders(200, 'reader');
  });

  it('pauses within a second, stays paused, and resumes to one copy per reader', async () => {
    paused = await h.createIssue('Paused and resumed');
    const { id: sendId } = await h.trigger(paused.id);
    await until('the first copies', () => h.copiesOf(sendId).length >= 3);

    const pause = await h.control(paused.id, 'pause');
    const pausedAt = Date.now();
    expect([pause.status, pause.body.status]).toEqual([200, 'paused']);
    const atPause = h.copiesOf(sendId).length;

    // What was in flight finishes; the jobs left in the window are skipped; the fan-out stops.
    await workersIdle(t);
    const settled = h.copiesOf(sendId).length;
    expect(settled - atPause).toBeLessThanOrEqual(SEND_RATE);
    const { rows } = await t.c.pool.query(`SELECT max(submitted_at) AS last FROM messages WHERE send_id = $1`, [sendId]);
    expect((rows[0].last as Date).getTime()).toBeLessThan(pausedAt + 1000);
    let p = await h.progress(paused.id);
    expect(p).toMatchObject({ status: 'paused', total: 200, submitted: settled, queued: 200 - settled, sending: 0, failed: 0, cancelled: 0, etaSeconds: null });
    expect(settled).toBeLessThan(200);

    // Nothing happens while paused. An absence sends no event to wait for, so this is the one
    // fixed wait of the file: 1.5 s of "nothing arrives" at a rate that would otherwise deliver
    // about 30 copies in that time.
    await sleep(1500);
    expect(h.copiesOf(sendId)).toHaveLength(settled);
    p = await h.progress(paused.id);
    expect(p).toMatchObject({ status: 'paused', submitted: settled, queued: 200 - settled });

    expect((await h.control(paused.id, 'pause')).status).toBe(409);
    const resume = await h.control(paused.id, 'resume');
    expect([resume.status, resume.body.status]).toEqual([200, 'sending']);
    const again = await h.control(paused.id, 'resume');
    expect([again.status, again.body.error?.code]).toEqual([409, 'not_paused']);

    const done = await h.waitForStatus(paused.id, 'done', 30_000);
    expect(done).toMatchObject({ total: 200, submitted: 200, queued: 0, sending: 0, failed: 0, cancelled: 0 });
    await workersIdle(t);
    const counts = perRecipient(h.copiesOf(sendId));
    expect([...counts.entries()].sort()).toEqual(readers.map((r) => [r.email, 1]).sort());
  }, 60_000);

  it('cancels: what is still queued becomes cancelled, and nothing more is sent', async () => {
    cancelled = await h.createIssue('Cancelled');
    const { id: sendId } = await h.trigger(cancelled.id);
    await until('the first copies', () => h.copiesOf(sendId).length >= 3);

    const cancel = await h.control(cancelled.id, 'cancel');
    expect([cancel.status, cancel.body.status]).toEqual([200, 'cancelled']);
    const atCancel = h.copiesOf(sendId).length;

    await workersIdle(t);
    const p = await h.progress(cancelled.id);
    expect(p).toMatchObject({ status: 'cancelled', total: 200, fanoutDone: true, queued: 0, sending: 0, failed: 0, bounced: 0, etaSeconds: null });
    expect(p.finishedAt).not.toBeNull();
    expect(p.submitted + p.cancelled).toBe(p.total);
    expect(p.cancelled).toBeGreaterThan(0);
    expect(await h.statusCounts(sendId)).toEqual({ submitted: p.submitted, cancelled: p.cancelled });

    // Only what was in flight at the cancel arrived after it; every copy has its submitted row.
    const copies = h.copiesOf(sendId);
    expect(copies.length - atCancel).toBeLessThanOrEqual(SEND_RATE);
    expect(copies).toHaveLength(p.submitted);
    expect([...perRecipient(copies).values()].every((n) => n === 1)).toBe(true);
  }, 30_000);

  it('refuses controls that do not fit the state with 409, changing nothing', async () => {
    // Done: nothing to pause, resume or cancel.
    expect((await h.progress(paused.id)).status).toBe('done');
    const cases: [Issue, 'pause' | 'resume' | 'cancel', string][] = [
      [paused, 'pause', 'not_sending'],
      [paused, 'resume', 'not_paused'],
      [paused, 'cancel', 'send_finished'],
      [cancelled, 'pause', 'not_sending'],
      [cancelled, 'resume', 'not_paused'],
      [cancelled, 'cancel', 'send_finished'],
    ];
    for (const [issue, action, code] of cases) {
      const res = await h.control(issue.id, action);
      expect([issue.id, action, res.status, res.body.error?.code]).toEqual([issue.id, action, 409, code]);
    }
    expect((await h.progress(paused.id)).status).toBe('done');
    expect((await h.progress(cancelled.id)).status).toBe('cancelled');

    // A send that is running cannot be resumed; a draft has no send to control.
    const draft = await h.createIssue('Never triggered');
    for (const action of ['pause', 'resume', 'cancel'] as const) {
      const res = await h.control(draft.id, action);
      expect([action, res.status, res.body.error?.code]).toEqual([action, 404, 'not_found']);
    }
  });
});

describe('scheduled sends', () => {
  // A short sending timeout makes the supervisor look every second.
  const t = useTestContext({ worker: true, env: { SENDING_TIMEOUT_SECONDS: '3' } });
  const h = helpers(t);
  const arrivedAt = new Map<ReceivedMail, number>();
  let readers: { id: number; email: string }[];

  beforeAll(async () => {
    readers = await h.addNumberedReaders(3, 'scheduled');
    // Stamp each mail with the time the sink received it.
    const push = t.smtp.messages.push.bind(t.smtp.messages);
    t.smtp.messages.push = (...mails: ReceivedMail[]) => {
      for (const m of mails) arrivedAt.set(m, Date.now());
      return push(...mails);
    };
  });

  const archived = async (slug: string) => (await t.app.inject({ method: 'GET', url: `/issues/${slug}`, headers: { accept: 'application/json' } })).statusCode;

  it('waits for scheduledAt: scheduled, not public, nothing mailed before; then sent and done', async () => {
    const issue = await h.createIssue('Scheduled');
    const at = new Date(Date.now() + 2000);
    const p = await h.trigger(issue.id, { scheduledAt: at.toISOString() });
    expect(p).toMatchObject({ status: 'scheduled', scheduledAt: at.toISOString(), startedAt: null, total: 0 });
    expect(await archived(issue.slug)).toBe(404);
    expect((await h.api('PATCH', `/api/issues/${issue.id}`, { subject: 'Changed' })).statusCode).toBe(409);
    // Triggering again does not move the time or start it now.
    expect(await h.trigger(issue.id)).toMatchObject({ id: p.id, status: 'scheduled', scheduledAt: at.toISOString() });

    const done = await h.waitForStatus(issue.id, 'done', 15_000);
    expect(done).toMatchObject({ total: readers.length, submitted: readers.length });
    expect(new Date(done.startedAt!).getTime()).toBeGreaterThanOrEqual(at.getTime());
    await workersIdle(t);
    const copies = h.copiesOf(p.id);
    expect(copies.map((m) => m.recipients[0]).sort()).toEqual(readers.map((r) => r.email).sort());
    for (const m of copies) expect(arrivedAt.get(m)).toBeGreaterThanOrEqual(at.getTime());
    expect(await archived(issue.slug)).toBe(200);
  });

  it('still fires when Redis loses its delayed fan-out job: the supervisor adds it again', async () => {
    const issue = await h.createIssue('Lost job');
    const at = new Date(Date.now() + 2500);
    const p = await h.trigger(issue.id, { scheduledAt: at.toISOString() });
    expect(p.status).toBe('scheduled');
    const job = await t.c.queues.fanout.getJob(`send-${p.id}`);
    expect(job).toBeDefined();
    expect(await job!.isDelayed()).toBe(true);

    // Redis loses the fan-out queue: every key of it is deleted.
    const redis = new Redis(REDIS_URL);
    try {
      const keys: string[] = [];
      let cursor = '0';
      do {
        const [next, batch] = await redis.scan(cursor, 'MATCH', `${t.config.queuePrefix}:send-fanout:*`, 'COUNT', 500);
        keys.push(...batch);
        cursor = next;
      } while (cursor !== '0');
      expect(keys).toContain(`${t.config.queuePrefix}:send-fanout:send-${p.id}`);
      expect(await redis.del(...keys)).toBe(keys.length);
    } finally {
      redis.disconnect();
    }
    expect(await archived(issue.slug)).toBe(404);

    const done = await h.waitForStatus(issue.id, 'done', 15_000);
    expect(done).toMatchObject({ total: readers.length, submitted: readers.length });
    await workersIdle(t);
    const copies = h.copiesOf(p.id);
    expect(copies).toHaveLength(readers.length);
    for (const m of copies) expect(arrivedAt.get(m)).toBeGreaterThanOrEqual(at.getTime());
  });
});
