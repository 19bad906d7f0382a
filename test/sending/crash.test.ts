// Crash safety of a send (issue 4), end to end: the real worker entry point in child processes,
// killed or cut off mid-send, against a real SMTP server that counts the copies it receives.
//
// The guarantee under test: every active reader ends with exactly one `submitted` message; a
// second copy is possible only for a message that was in flight (`sending`) when its worker died.
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, describe, expect, it } from '@jest/globals';
import { addReaders } from '../support/readers.js';
import { loseRedisKeys } from '../support/redis-keys.js';
import type { RelayOptions } from '../support/relay.js';
import { expectEachReaderOnce, inFlight, messageCounts, startSend } from '../support/send-checks.js';
import { QUICK_RECOVERY, withSendWorld, type SendWorld } from '../support/send-world.js';
import { until, withDeadline } from '../support/wait.js';
import { killAllWorkerProcesses, outputsOf } from '../support/worker-process.js';

/**
 * Active readers per send. The relays answer slowly (see RelayOptions), so a worker submits
 * 50–100 copies a second and a send lasts seconds: long enough to cut it in the middle, with
 * messages in flight.
 */
const READERS = 400;
/** Readers who must get nothing: not confirmed, or gone. */
const INACTIVE = { pending: 5, unsubscribed: 5, bounced: 3 };

const ENV = { ...QUICK_RECOVERY, SMTP_POOL_SIZE: '5' };

/**
 * BullMQ hands a dead process's active jobs (the fan-out, the deliveries in flight) to another
 * worker only when their 30 s lock has expired and its stalled-job check (every 30 s, shared by
 * the workers of a queue) has seen them twice, whatever SENDING_TIMEOUT_SECONDS says: about
 * 60 s after the kill, or 90 s when a check is skipped (a worker's 30 s timer often fires just
 * before the 30 s "check done" key it set itself expires: observed in about one run in two).
 */
const AFTER_SIGKILL_MS = 150_000;

afterAll(() => killAllWorkerProcesses());

// ---------------------------------------------------------------------------------------------
// The world of one test: its own database, Redis prefix and SMTP relay, the readers, no
// in-process worker (see test/support/send-world.ts).

/** Runs `fn` with READERS active readers and the INACTIVE ones, against a relay with these options. */
async function withWorld(opts: { relay: RelayOptions }, fn: (w: SendWorld) => Promise<void>): Promise<void> {
  await withSendWorld({ env: ENV, relay: opts.relay, readers: READERS }, async (w) => {
    await addReaders(
      w.t,
      (['pending', 'unsubscribed', 'bounced'] as const).flatMap((status) =>
        Array.from({ length: INACTIVE[status] }, (_, i) => ({ email: `inactive-${status}${i + 1}@example.com`, status })),
      ),
    );
    await fn(w);
  });
}

const ISSUE_MARKDOWN = `A short standing intro — with "quotes", ampersands & pipes | and emoji 📬.

## First section

Two paragraphs of commentary, [a link](https://example.com/a), and a list:

- one
- two

## Second section

More commentary. Forward this to a friend.`;

/** Creates an issue and triggers its send; returns the issue id and the send id. */
const triggerSend = (w: SendWorld, subject: string) => startSend(w.t, { subject, markdown: ISSUE_MARKDOWN });

const waitForDone = (w: SendWorld, issueId: number, timeoutMs: number) => w.ed.waitForStatus(issueId, 'done', timeoutMs);

// ---------------------------------------------------------------------------------------------

describe('crash safety of a send (real worker processes, real SMTP)', () => {
  // The quick scenarios run one after the other. The SIGKILL ones spend most of their minute
  // waiting for BullMQ's stalled-job check (see AFTER_SIGKILL_MS), so they run together with the
  // known-bug ones, each in a world of its own (Jest runs a describe block's concurrent tests as
  // one group, after the sequential tests).

  it('Redis loses every job mid-send: the queued messages are fed again from Postgres, nobody mailed twice', async () => {
    await withWorld({ relay: { answerDelayMs: 50 } }, async (w) => {
      const worker = await w.startWorker('worker');
      const { issueId, sendId } = await triggerSend(w, 'Crash test: Redis flushed');
      await until(
        'a quarter of the copies',
        () => w.totalCopies() >= READERS / 4,
        30_000,
        () => `${w.totalCopies()} copies`,
      );

      const before = await inFlight(w.t, sendId);
      expect(await loseRedisKeys(w.t.config.queuePrefix)).toBeGreaterThan(0);
      const after = await inFlight(w.t, sendId);
      const atFlush = await messageCounts(w.t, sendId);
      expect(atFlush.queued).toBeGreaterThan(0);

      await waitForDone(w, issueId, 30_000);
      expect(worker.running).toBe(true);
      // Messages in flight at the flush finish on their worker and are recorded; the queued
      // ones get new jobs. The guarantee would allow a second copy of an in-flight message;
      // none happens here.
      const duplicated = await expectEachReaderOnce(w.t, sendId, READERS, w.relays, new Set([...before, ...after]));
      expect(duplicated).toEqual([]);
    });
  }, 60_000);

  it('the SMTP relay goes down mid-send: the send stalls, marks nothing failed or bounced, and completes when it returns', async () => {
    await withWorld({ relay: { answerDelayMs: 20 } }, async (w) => {
      const { relay } = w;
      expect(w.t.config.smtpUrl).toBe(relay.url);
      await w.startWorker('worker');
      const { issueId, sendId } = await triggerSend(w, 'Crash test: relay down');
      await until(
        'a quarter of the copies',
        () => relay.total() >= READERS / 4,
        30_000,
        () => `${relay.total()} copies`,
      );

      await relay.stop();
      const copiesWhenDown = relay.total();
      expect(copiesWhenDown).toBeLessThan(READERS);
      // Every copy the relay took was answered 250 and gets recorded (in batches).
      await until(
        'the accepted copies recorded',
        async () => (await messageCounts(w.t, sendId)).submitted === copiesWhenDown,
        10_000,
        async () => JSON.stringify({ copiesWhenDown, ...(await messageCounts(w.t, sendId)) }),
      );

      // Deliberately a fixed wait: the claim is that nothing happens. For ~2 s (two retry
      // delays) the relay refuses connections, the worker keeps trying, and no message moves
      // to submitted, failed or bounced.
      await sleep(2_000);
      const stalled = await w.ed.progress(issueId);
      expect(stalled).toMatchObject({ status: 'sending', submitted: copiesWhenDown, failed: 0, bounced: 0, cancelled: 0 });
      expect(stalled.queued + stalled.sending).toBe(READERS - copiesWhenDown);
      expect(relay.total()).toBe(copiesWhenDown);

      await relay.start();
      const done = await waitForDone(w, issueId, 30_000);
      expect(done).toMatchObject({ total: READERS, submitted: READERS, failed: 0, bounced: 0, cancelled: 0 });
      // The relay never lost a message it took, so nothing may arrive twice.
      const duplicated = await expectEachReaderOnce(w.t, sendId, READERS, w.relays, new Set());
      expect(duplicated).toEqual([]);
      const { rows } = await w.t.c.pool.query<{ status: string; n: number }>(
        'SELECT status::text, count(*)::int AS n FROM subscribers GROUP BY status ORDER BY 1',
      );
      expect(rows).toEqual([
        { status: 'active', n: READERS },
        { status: 'bounced', n: INACTIVE.bounced },
        { status: 'pending', n: INACTIVE.pending },
        { status: 'unsubscribed', n: INACTIVE.unsubscribed },
      ]);
    });
  }, 60_000);

  it('a worker stopped with SIGTERM mid-send drains (exit 0, nothing left in flight), and a restart finishes with no duplicates', async () => {
    await withWorld({ relay: { answerDelayMs: 50 } }, async (w) => {
      const first = await w.startWorker('first');
      const { issueId, sendId } = await triggerSend(w, 'Crash test: SIGTERM');
      await until(
        'a quarter of the copies',
        () => w.totalCopies() >= READERS / 4,
        30_000,
        () => `${w.totalCopies()} copies`,
      );
      expect((await messageCounts(w.t, sendId)).sending).toBeGreaterThan(0);

      const stoppedAt = Date.now();
      first.kill('SIGTERM');
      // The process forces itself out after 30 s; draining the jobs in flight takes far less.
      const exit = await withDeadline(first.exited, 15_000, 'the worker did not exit after SIGTERM', () => outputsOf([first]));
      expect(exit).toEqual({ code: 0, signal: null });
      expect(Date.now() - stoppedAt).toBeLessThan(15_000);

      const atStop = await messageCounts(w.t, sendId);
      expect(atStop).toMatchObject({ sending: 0, failed: 0, bounced: 0 });
      expect(atStop.queued).toBeGreaterThan(0);
      // Whatever the relay took was recorded before the process exited.
      expect(atStop.submitted).toBe(w.totalCopies());

      await w.startWorker('restarted');
      await waitForDone(w, issueId, 30_000);
      const duplicated = await expectEachReaderOnce(w.t, sendId, READERS, w.relays, new Set());
      expect(duplicated).toEqual([]);
    });
  }, 90_000);

  it.concurrent('Redis loses the jobs but not the list of waiting ids: the send still completes', async () => {
    await withWorld({ relay: { answerDelayMs: 50 } }, async (w) => {
      const worker = await w.startWorker('worker');
      const { issueId, sendId } = await triggerSend(w, 'Crash test: partial loss');
      const triggeredAt = Date.now();
      await until(
        'a quarter of the copies',
        () => w.totalCopies() >= READERS / 4,
        30_000,
        () => `${w.totalCopies()} copies`,
      );
      // The pace so far (about 100 copies a second on a quiet machine, a tenth of that on a
      // loaded one) sets how long the rest may take.
      const perCopyMs = (Date.now() - triggeredAt) / w.totalCopies();

      const before = await inFlight(w.t, sendId);
      expect(await loseRedisKeys(w.t.config.queuePrefix, 'deliver:m-*')).toBeGreaterThan(0);
      const after = await inFlight(w.t, sendId);

      // The fan-out notices the lost jobs after its stall time (5 s) and feeds them again; the
      // rest of the send then goes at the same pace (3 s on a quiet machine). Twice that pace
      // and the stall time, with 10 s of slack.
      await waitForDone(w, issueId, 15_000 + 2 * perCopyMs * (READERS - w.totalCopies()));
      expect(worker.running).toBe(true);
      await expectEachReaderOnce(w.t, sendId, READERS, w.relays, new Set([...before, ...after]));
    });
  }, 200_000);

  it.concurrent('a worker SIGKILLed mid-send and restarted: every reader gets the issue, twice only if it was in flight', async () => {
    await withWorld({ relay: { answerDelayMs: 50 } }, async (w) => {
      const first = await w.startWorker('first');
      const { issueId, sendId } = await triggerSend(w, 'Crash test: SIGKILL');

      await until(
        'a quarter of the copies',
        () => w.totalCopies() >= READERS / 4,
        30_000,
        () => `${w.totalCopies()} copies`,
      );
      first.kill('SIGKILL');
      expect(await first.exited).toEqual({ code: null, signal: 'SIGKILL' });

      // What the dead worker left: work still to do, and the messages it had in flight (some of
      // which the relay already has).
      const atKill = await messageCounts(w.t, sendId);
      const mayDuplicate = await inFlight(w.t, sendId);
      expect(atKill.queued).toBeGreaterThan(0);
      expect(mayDuplicate.size).toBeGreaterThan(0);
      expect(w.totalCopies()).toBeLessThan(READERS);
      expect(atKill.submitted + atKill.sending).toBeGreaterThanOrEqual(w.totalCopies());

      await w.startWorker('restarted');
      await waitForDone(w, issueId, AFTER_SIGKILL_MS);
      await expectEachReaderOnce(w.t, sendId, READERS, w.relays, mayDuplicate);
    });
  }, 200_000);

  it.concurrent('two workers, the one running the fan-out SIGKILLed: the other takes it over and finishes alone', async () => {
    // A slow relay (20 copies a second) for the first worker, so the send outlasts the start of
    // the second, however busy the machine.
    await withWorld({ relay: { answerDelayMs: 250 } }, async (w) => {
      // Alone when the send starts, the first worker takes the fan-out job.
      const runsFanout = await w.startWorker('fan-out');
      const { issueId, sendId } = await triggerSend(w, 'Crash test: two workers');
      await until(
        'the first copies',
        () => w.totalCopies() >= 20,
        30_000,
        () => `${w.totalCopies()} copies`,
      );
      // The other worker has a relay of its own, so what each one sent can be told apart.
      const othersRelay = await w.addRelay({ answerDelayMs: 50 });
      const other = await w.startWorker('other', { SMTP_URL: othersRelay.url });
      await until(
        'the other worker sending too',
        () => othersRelay.total() >= 20,
        30_000,
        () => `${othersRelay.total()} copies`,
      );

      runsFanout.kill('SIGKILL');
      await runsFanout.exited;
      const fromDead = w.relay.total();
      // A superset of what died in flight: the survivor's own claims are in it too.
      const mayDuplicate = await inFlight(w.t, sendId);
      const atKill = await messageCounts(w.t, sendId);
      expect(atKill.queued).toBeGreaterThan(0);
      expect(fromDead + othersRelay.total()).toBeLessThan(READERS);

      await waitForDone(w, issueId, AFTER_SIGKILL_MS);
      expect(other.running).toBe(true);
      // Everything after the kill went through the survivor.
      expect(w.relay.total()).toBe(fromDead);
      await expectEachReaderOnce(w.t, sendId, READERS, w.relays, mayDuplicate);
    });
  }, 200_000);

  it.concurrent('messages in flight on a SIGKILLed worker are sent again soon after SENDING_TIMEOUT_SECONDS', async () => {
    await withWorld({ relay: { answerDelayMs: 250 } }, async (w) => {
      const runsFanout = await w.startWorker('fan-out');
      const { issueId, sendId } = await triggerSend(w, 'Crash test: recovery timeout');
      await until(
        'the first copies',
        () => w.totalCopies() >= 20,
        30_000,
        () => `${w.totalCopies()} copies`,
      );
      const othersRelay = await w.addRelay({ answerDelayMs: 50 });
      const other = await w.startWorker('other', { SMTP_URL: othersRelay.url });
      await until(
        'the other worker sending too',
        () => othersRelay.total() >= 20,
        30_000,
        () => `${othersRelay.total()} copies`,
      );

      // The worker that does not run the fan-out dies with messages in flight; the survivor's
      // relay speeds up, so its own share takes a second or two.
      other.kill('SIGKILL');
      const killedAt = Date.now();
      await other.exited;
      w.relay.answerDelayMs = 0;
      const mayDuplicate = await inFlight(w.t, sendId);
      expect(mayDuplicate.size).toBeGreaterThan(0);
      expect(runsFanout.running).toBe(true);

      // The dead worker's claims expire after 3 s and the supervisor looks every second: 12 s
      // of slack is plenty.
      await waitForDone(w, issueId, 3_000 + 12_000 - (Date.now() - killedAt));
      await expectEachReaderOnce(w.t, sendId, READERS, w.relays, mayDuplicate);
    });
  }, 200_000);
});
