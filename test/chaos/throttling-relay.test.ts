// What production relays do to a send (issue 12, item 3), against a real SMTP server over TCP,
// real Postgres and Redis, and the worker in-process:
// - a relay that throttles a share of the transactions (421, then it closes the connection, as
//   providers pacing a sender do) must not stall the send, fail, bounce or spend the attempts of
//   anyone;
// - only a run of refusals makes the relay unavailable (the whole queue waits), and the send
//   completes when it answers again;
// - a relay that is down, or drops the connection once it has the data, fails nobody.
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from '@jest/globals';
import type { TestContext } from '../support/context.js';
import { workersIdle } from '../support/editor.js';
import { captureLog } from '../support/log-capture.js';
import type { Relay } from '../support/relay.js';
import { messageCounts, startSend } from '../support/send-checks.js';
import { withSendWorld, type SendWorld } from '../support/send-world.js';
import { until } from '../support/wait.js';

// ---------------------------------------------------------------------------------------------
// The world of one test: its own relay (test/support/relay.ts: it can throttle, refuse, drop and
// go away, and counts what it took and refused), database, queue prefix, worker and log.

type Line = { level: number; msg: string; [k: string]: unknown };

type World = SendWorld & { log: () => Line[] };

async function withWorld(env: Record<string, string>, readers: number, fn: (w: World) => Promise<void>): Promise<void> {
  const capture = captureLog<Line>();
  // On stop, connections still open are closed after 200 ms.
  await withSendWorld({ worker: true, logTo: capture.stream, env: { LOG_LEVEL: 'info', ...env }, relay: { closeTimeoutMs: 200 }, readers }, (w) =>
    fn({ ...w, log: capture.lines }),
  );
}

/** Claims of the send's messages: one per message, plus one per refusal it met. */
async function claims(t: TestContext, sendId: number): Promise<{ total: number; most: number }> {
  const {
    rows: [r],
  } = await t.c.pool.query<{ total: number; most: number }>(
    'SELECT coalesce(sum(attempts), 0)::int AS total, coalesce(max(attempts), 0)::int AS most FROM messages WHERE send_id = $1',
    [sendId],
  );
  return r!;
}

/** A series of this process's /metrics, summed over the label values that match. */
async function metric(t: TestContext, name: string, labels: Record<string, string> = {}): Promise<number> {
  const text = await t.c.metrics.scrape();
  let sum = 0;
  for (const line of text.split('\n')) {
    const m = /^(\w+)(\{[^}]*\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    if (Object.entries(labels).every(([k, v]) => (m[2] ?? '').includes(`${k}="${v}"`))) sum += Number(m[3]);
  }
  return sum;
}

/** Every reader of `readers` got exactly `copies(address)` copies, and nobody else any. */
function expectCopies(relay: Relay, readers: number, copies: (address: string) => number = () => 1): void {
  const wrong: [string, number, number][] = [];
  for (let i = 1; i <= readers; i++) {
    const address = `reader${i}@example.com`;
    const got = relay.received.get(address) ?? 0;
    if (got !== copies(address)) wrong.push([address, got, copies(address)]);
  }
  expect(wrong).toEqual([]);
  expect(relay.received.size).toBe(readers);
}

async function expectNobodyBlamed(t: TestContext): Promise<void> {
  const {
    rows: [b],
  } = await t.c.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM bounces');
  const {
    rows: [s],
  } = await t.c.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM subscribers WHERE status <> 'active' OR soft_bounces IS NOT NULL`);
  expect({ bounceRecords: b!.n, readersTouched: s!.n }).toEqual({ bounceRecords: 0, readersTouched: 0 });
}

const lostJobsWarning = 'queued messages have no jobs (Redis lost them?): feeding them again from Postgres';

// ---------------------------------------------------------------------------------------------

describe('a relay that throttles one transaction in five', () => {
  /**
   * 2,000 readers. Before the fix every 421 made every worker wait RETRY_DELAY_SECONDS (5 s, the
   * default, kept here): about 8.5 messages/s on the development machine (`npm run
   * bench:throttle`), four minutes for this send. Throttled messages now wait alone, half a
   * second at first: the send took 26–31 s under jest on that machine, shared with other jobs;
   * 90 s leaves room for a busier one and still fails the old behaviour.
   */
  const READERS = 2000;
  const WITHIN_MS = 90_000;

  it('does not stall the send: every reader gets one copy, nobody fails or bounces, no attempt is spent', async () => {
    // One attempt: a throttle that spent it would fail its message at once.
    await withWorld({ DELIVERY_ATTEMPTS: '1' }, READERS, async (w) => {
      w.relay.throttleEvery = 5;
      const started = Date.now();
      const { issueId, sendId } = await startSend(w.t, 'Throttled by the relay');
      const done = await w.ed.waitForStatus(issueId, 'done', WITHIN_MS);
      const took = Date.now() - started;
      expect(took).toBeLessThan(WITHIN_MS);

      expect(done).toMatchObject({ total: READERS, submitted: READERS, failed: 0, bounced: 0, cancelled: 0 });
      expect(await messageCounts(w.t, sendId)).toEqual({ queued: 0, sending: 0, submitted: READERS, failed: 0, bounced: 0, cancelled: 0 });
      expectCopies(w.relay, READERS);
      await expectNobodyBlamed(w.t);

      // The relay refused one transaction in five, and each refusal cost exactly one more claim
      // of its message, backed off: no retry storm, nothing lost, and some messages were refused
      // more often than their one attempt would have allowed.
      expect(w.relay.refused).toBe(Math.floor(w.relay.transactions / 5));
      expect(w.relay.refused).toBeGreaterThanOrEqual(READERS / 4 - 1);
      const c = await claims(w.t, sendId);
      expect(c.total - READERS).toBe(w.relay.refused);
      expect(c.most).toBeGreaterThanOrEqual(2);
      expect(await metric(w.t, 'broadside_delivery_retries_total', { reason: 'backed_off' })).toBe(w.relay.refused);
      // Counted as refusals: a 421 that came on a fresh connection with its reply, one on a
      // reused connection as that connection closed (see mailer.ts).
      expect(await metric(w.t, 'broadside_smtp_refusals_total')).toBe(w.relay.refused);
      expect(await metric(w.t, 'broadside_smtp_refusals_total', { kind: 'throttled' })).toBeGreaterThan(0);

      // The relay was never taken for unavailable.
      expect(await metric(w.t, 'broadside_delivery_retries_total', { reason: 'relay_unavailable' })).toBe(0);
      expect(await metric(w.t, 'broadside_delivery_retries_total', { reason: 'temporary' })).toBe(0);
      expect(w.log().filter((l) => l.msg === lostJobsWarning)).toEqual([]);
    });
  }, 180_000);
});

describe('a relay that refuses everything for a while, then recovers', () => {
  it('is unavailable after a run of refusals: the whole queue waits (no churn through the messages), nobody fails, and the send completes', async () => {
    await withWorld({ DELIVERY_ATTEMPTS: '1', RETRY_DELAY_SECONDS: '1' }, 300, async (w) => {
      const { issueId, sendId } = await startSend(w.t, 'Relay refusing everything');
      await until('the first 50 copies', () => w.relay.total() >= 50, 30_000);
      w.relay.refuseAll = true;
      await until(
        'the queue to wait for the relay',
        async () => (await metric(w.t, 'broadside_delivery_retries_total', { reason: 'relay_unavailable' })) > 0,
        10_000,
      );
      expect(await w.t.c.queues.deliver.getRateLimitTtl()).toBeGreaterThan(0);
      const submittedAtWait = (await messageCounts(w.t, sendId)).submitted;
      const refusedAtWait = w.relay.refused;

      // Deliberately a fixed wait: the claim is that little happens. For 8 s (8 retry delays,
      // longer than the fan-out's 5 s stall time) the relay refuses every transaction; the
      // queue waits and only probes it, a few transactions per retry delay.
      await sleep(8_000);
      const during = w.relay.refused - refusedAtWait;
      expect(during).toBeGreaterThan(0);
      expect(during).toBeLessThanOrEqual(8 * 5);
      expect(await messageCounts(w.t, sendId)).toMatchObject({ submitted: submittedAtWait, failed: 0, bounced: 0, cancelled: 0 });
      expect(await w.ed.progress(issueId)).toMatchObject({ status: 'sending' });
      // The limit came down from SMTP_POOL_SIZE (20, the default).
      expect(await metric(w.t, 'broadside_smtp_concurrency_limit')).toBeLessThanOrEqual(5);

      w.relay.refuseAll = false;
      const done = await w.ed.waitForStatus(issueId, 'done', 30_000);
      expect(done).toMatchObject({ total: 300, submitted: 300, failed: 0, bounced: 0, cancelled: 0 });
      expectCopies(w.relay, 300);
      await expectNobodyBlamed(w.t);
      // Back to full speed once the relay answers again.
      expect(await metric(w.t, 'broadside_smtp_concurrency_limit')).toBe(20);
      const lines = w.log();
      expect(lines.filter((l) => l.msg.startsWith('SMTP relay unavailable')).length).toBeGreaterThanOrEqual(1);
      expect(lines.filter((l) => l.msg.startsWith('SMTP relay answering again')).length).toBeGreaterThanOrEqual(1);
      expect(lines.filter((l) => l.msg === 'SMTP submissions back to full speed').length).toBeGreaterThanOrEqual(1);
      // Backed-off and waiting messages were never taken for lost jobs.
      expect(lines.filter((l) => l.msg === lostJobsWarning)).toEqual([]);
    });
  }, 120_000);
});

describe('a relay that is down, then comes back', () => {
  it('refuses connections: unavailable after a run of them, nothing failed, and the send completes when it is back', async () => {
    await withWorld({ DELIVERY_ATTEMPTS: '1', RETRY_DELAY_SECONDS: '1' }, 300, async (w) => {
      const { issueId, sendId } = await startSend(w.t, 'Relay down');
      await until('the first 50 copies', () => w.relay.total() >= 50, 30_000);
      await w.relay.stop();
      await until(
        'the queue to wait for the relay',
        async () => (await metric(w.t, 'broadside_delivery_retries_total', { reason: 'relay_unavailable' })) > 0,
        10_000,
      );
      const copiesWhenDown = w.relay.total();
      await until('the copies the relay took recorded', async () => (await messageCounts(w.t, sendId)).submitted === copiesWhenDown, 10_000);
      const claimsAtWait = (await claims(w.t, sendId)).total;

      // Deliberately a fixed wait, as above: for 4 s nothing may move but a few probes.
      await sleep(4_000);
      expect(await messageCounts(w.t, sendId)).toMatchObject({ submitted: copiesWhenDown, failed: 0, bounced: 0, cancelled: 0 });
      expect((await claims(w.t, sendId)).total - claimsAtWait).toBeLessThanOrEqual(4 * 5);

      await w.relay.start();
      const done = await w.ed.waitForStatus(issueId, 'done', 30_000);
      expect(done).toMatchObject({ total: 300, submitted: 300, failed: 0, bounced: 0, cancelled: 0 });
      expectCopies(w.relay, 300);
      await expectNobodyBlamed(w.t);
    });
  }, 120_000);
});

describe('a relay that drops the connection once it has the data', () => {
  // Not covered by test/sending/crash.test.ts, whose relay answers a message whose data is in
  // before it goes away.
  it('backs off those messages alone: the send completes, nobody fails, and only they may get a second copy', async () => {
    await withWorld({ DELIVERY_ATTEMPTS: '1' }, 300, async (w) => {
      // The first copy of every tenth reader: the relay has it, the worker never hears so.
      const dropped = (address: string) => Number(/\d+/.exec(address)![0]) % 10 === 0;
      w.relay.dropAfterData = (address, copy) => copy === 1 && dropped(address);
      const { issueId, sendId } = await startSend(w.t, 'Relay dropping connections');
      const done = await w.ed.waitForStatus(issueId, 'done', 60_000);
      expect(done).toMatchObject({ total: 300, submitted: 300, failed: 0, bounced: 0, cancelled: 0 });
      // At least once: the relay got those twice (it may have delivered the first), nobody else did.
      expectCopies(w.relay, 300, (a) => (dropped(a) ? 2 : 1));
      await expectNobodyBlamed(w.t);
      expect((await claims(w.t, sendId)).total).toBe(300 + 30);
      expect(await metric(w.t, 'broadside_delivery_retries_total', { reason: 'backed_off' })).toBe(30);
      expect(await metric(w.t, 'broadside_smtp_refusals_total', { kind: 'relay' })).toBe(30);
      expect(await metric(w.t, 'broadside_smtp_refusals_total', { kind: 'throttled' })).toBe(0);
    });
  }, 120_000);
});

describe('backed-off messages at the tail of a send', () => {
  it("one reader refused for longer than the fan-out's stall time: not taken for a lost job, and sent when the relay takes it", async () => {
    await withWorld({ RETRY_DELAY_SECONDS: '1', DELIVERY_ATTEMPTS: '1' }, 50, async (w) => {
      let refuse = true;
      w.relay.onRcpt = (a) => (refuse && a === 'reader7@example.com' ? { code: 421, message: 'Try again later, closing connection' } : undefined);
      const { issueId, sendId } = await startSend(w.t, 'One reader throttled');
      await until('everyone else submitted', async () => (await messageCounts(w.t, sendId)).submitted === 49, 30_000);
      // The fan-out takes queued messages that do not move for 5 s (at RETRY_DELAY_SECONDS=1)
      // for lost jobs. The refused one stays queued, backed off, for twice that.
      const since = Date.now();
      await until('10 s of refusals of reader 7', () => Date.now() - since >= 10_000 && w.relay.refused >= 8, 30_000);
      const p = await w.ed.progress(issueId);
      expect(p).toMatchObject({ status: 'sending', submitted: 49, failed: 0 });
      expect(p.queued + p.sending).toBe(1);
      // One job for it, wherever it is (backed off, come due, or being tried): not a second one fed
      // again from Postgres.
      const jobs = await w.t.c.queues.deliver.getJobCounts('delayed', 'waiting', 'active', 'prioritized');
      expect(Object.values(jobs).reduce((a, b) => a + b, 0)).toBe(1);
      refuse = false;
      await w.ed.waitForStatus(issueId, 'done', 20_000);
      expectCopies(w.relay, 50);
      await expectNobodyBlamed(w.t);
      expect(w.log().filter((l) => l.msg === lostJobsWarning)).toEqual([]);
      // One claim per refusal, plus the one that went through.
      expect((await claims(w.t, sendId)).total).toBe(50 + w.relay.refused);
    });
  }, 120_000);
});

describe('pause and cancel with backed-off messages', () => {
  it('a pause holds them (nothing more is submitted), a resume sends them once; a cancel cancels them', async () => {
    await withWorld({ RETRY_DELAY_SECONDS: '1', DELIVERY_CONCURRENCY: '4', SMTP_POOL_SIZE: '2' }, 200, async (w) => {
      // Half the transactions refused: plenty of messages waiting, backed off, at any time.
      w.relay.throttleEvery = 2;
      const first = await startSend(w.t, 'Paused while throttled');
      await until(
        'copies and backed-off messages',
        async () => w.relay.total() >= 30 && (await w.t.c.queues.deliver.getJobCounts('delayed')).delayed! > 0,
        30_000,
      );
      expect((await w.ed.control(first.issueId, 'pause')).status).toBe(200);
      await until('nothing in flight', async () => (await messageCounts(w.t, first.sendId)).sending === 0, 10_000);
      const atPause = w.relay.total();
      // Deliberately a fixed wait: the claim is that nothing happens. The backed-off jobs come
      // due within 1 s (RETRY_DELAY_SECONDS) and find the send paused.
      await sleep(2_500);
      expect(w.relay.total()).toBe(atPause);
      expect(await w.ed.progress(first.issueId)).toMatchObject({ status: 'paused', failed: 0, bounced: 0 });
      expect((await w.ed.control(first.issueId, 'resume')).status).toBe(200);
      await w.ed.waitForStatus(first.issueId, 'done', 60_000);
      expectCopies(w.relay, 200);

      const second = await startSend(w.t, 'Cancelled while throttled');
      await until(
        'copies and backed-off messages',
        async () => (await messageCounts(w.t, second.sendId)).submitted >= 30 && (await w.t.c.queues.deliver.getJobCounts('delayed')).delayed! > 0,
        30_000,
      );
      expect((await w.ed.control(second.issueId, 'cancel')).status).toBe(200);
      await until('nothing in flight', async () => (await messageCounts(w.t, second.sendId)).sending === 0, 10_000);
      await workersIdle(w.t);
      const after = await messageCounts(w.t, second.sendId);
      expect(after).toMatchObject({ sending: 0, failed: 0, bounced: 0 });
      expect(after.cancelled).toBeGreaterThan(0);
      // A message in flight at the cancel that the relay then refuses is given back as cancelled,
      // not queued: nothing is left waiting in a send that will never run again.
      expect(after.submitted + after.cancelled).toBe(200);
      expect(after.queued).toBe(0);
      // Each reader has at most the one copy of the second issue that was submitted.
      expect(w.relay.total()).toBe(200 + after.submitted);
      await expectNobodyBlamed(w.t);
    });
  }, 180_000);
});

describe('reader mail through a relay that refuses it once', () => {
  it.each([
    ['421 at RCPT TO (throttled)', { code: 421, message: 'Try again later, closing connection' }],
    ['450 at RCPT TO (greylisted)', { code: 450, message: 'Greylisted, try again later' }],
  ])(
    '%s: the confirmation is retried and arrives',
    async (_name, refusal) => {
      await withWorld({}, 0, async (w) => {
        let refusedOnce = false;
        w.relay.onRcpt = (a) => {
          if (a !== 'newcomer@example.com' || refusedOnce) return undefined;
          refusedOnce = true;
          return refusal;
        };
        const res = await w.t.app.inject({
          method: 'POST',
          url: '/subscribe',
          headers: { accept: 'application/json' },
          payload: { email: 'newcomer@example.com' },
        });
        expect(res.statusCode).toBe(202);
        // Reader mail retries with a 2 s exponential backoff.
        await until('the confirmation', () => w.relay.received.get('newcomer@example.com') === 1, 20_000);
        expect(refusedOnce).toBe(true);
      });
    },
    60_000,
  );
});
