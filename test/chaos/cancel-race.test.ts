// Cancel racing what takes a message back from `sending` (issue 12, item 4): a worker killed
// mid-send (recovery of its claims) and a temporary failure (the release for a retry). Before,
// both put messages back to `queued` in a send already cancelled, where nothing would ever take
// them again: the send never settled and its progress under-reported what the relay had.
//
// What must hold: once SENDING_TIMEOUT_SECONDS has passed, no message of a cancelled send is
// queued or sending; every copy the relay got is counted, as submitted or as in doubt (a dead
// worker's message the relay may have); and nothing is sent after the cancel but what was in
// flight.
import { afterAll, describe, expect, it } from '@jest/globals';
import { releaseMessage } from '../../src/delivery/queries.js';
import { recoverStuck } from '../../src/sending/queries.js';
import { createTestContext, type TestContext } from '../support/context.js';
import { editor } from '../support/editor.js';
import { inFlight, messageCounts, someoneWaitsForLock, startSend } from '../support/send-checks.js';
import { QUICK_RECOVERY, withSendWorld } from '../support/send-world.js';
import { until } from '../support/wait.js';
import { killAllWorkerProcesses } from '../support/worker-process.js';

const ENV = { ...QUICK_RECOVERY, SMTP_POOL_SIZE: '5' };

afterAll(() => killAllWorkerProcesses());

/** Messages of a send by status and the addresses of their readers. */
async function addressesByStatus(t: TestContext, sendId: number): Promise<{ submitted: Set<string>; inDoubt: Set<string> }> {
  const { rows } = await t.c.pool.query<{ email: string; status: string; in_doubt: boolean }>(
    `SELECT s.email, m.status::text, m.in_doubt FROM messages m JOIN subscribers s ON s.id = m.subscriber_id WHERE m.send_id = $1`,
    [sendId],
  );
  return {
    submitted: new Set(rows.filter((r) => r.status === 'submitted').map((r) => r.email)),
    inDoubt: new Set(rows.filter((r) => r.in_doubt).map((r) => r.email)),
  };
}

/**
 * A cancel caught between its two statements (as cancelSend runs them, in one transaction): the
 * send is cancelled and what was queued then is cancelled, not yet committed.
 */
async function openCancel(t: TestContext, sendId: number): Promise<{ commit(): Promise<void> }> {
  const client = await t.c.pool.connect();
  await client.query('BEGIN');
  await client.query(`UPDATE sends SET status = 'cancelled', finished_at = now(), updated_at = now() WHERE id = $1`, [sendId]);
  await client.query(`UPDATE messages SET status = 'cancelled', updated_at = now() WHERE send_id = $1 AND status = 'queued'`, [sendId]);
  return {
    async commit() {
      try {
        await client.query('COMMIT');
      } finally {
        client.release();
      }
    },
  };
}

describe('cancel racing a message going back from sending', () => {
  it('a worker SIGKILLed as the send is cancelled: its claims become cancelled (in doubt) within the timeout, none stays queued, the counts cover every copy the relay got', async () => {
    const READERS = 300;
    // Slow answers keep messages in flight at the relay: some of them it has when the worker dies.
    await withSendWorld({ env: ENV, relay: { answerDelayMs: 150 }, readers: READERS }, async ({ t, relay, startWorker }) => {
      const first = await startWorker('first');
      const { issueId, sendId } = await startSend(t, 'Cancel racing a kill');
      await until(
        'the first copies',
        () => relay.total() >= 40,
        30_000,
        () => `${relay.total()} copies`,
      );

      // The race: the cancel and the kill at once.
      first.kill('SIGKILL');
      const cancelled = await editor(t).control(issueId, 'cancel');
      expect(cancelled.status).toBe(200);
      await first.exited;
      const mayHaveGone = await inFlight(t, sendId);
      const atCancel = await messageCounts(t, sendId);
      expect(mayHaveGone.size).toBeGreaterThan(0);
      expect(atCancel.queued).toBe(0);

      // Someone restarts a worker: its supervisor finds the dead worker's claims.
      const survivor = await startWorker('survivor');
      const copiesBefore = relay.total();
      const settled = await until(
        'no message queued or sending',
        async () => {
          const c = await messageCounts(t, sendId);
          return c.queued + c.sending === 0 ? c : undefined;
        },
        3_000 + 12_000,
        async () => JSON.stringify(await messageCounts(t, sendId)),
      );

      const progress = await editor(t).progress(issueId);
      expect(progress).toMatchObject({ status: 'cancelled', queued: 0, sending: 0, failed: 0, bounced: 0 });
      expect(progress.submitted + progress.cancelled).toBe(READERS);
      expect(settled).toEqual({ queued: 0, sending: 0, submitted: progress.submitted, failed: 0, bounced: 0, cancelled: progress.cancelled });
      const { submitted, inDoubt } = await addressesByStatus(t, sendId);
      // In doubt: exactly the dead worker's claims it had not recorded.
      expect(progress.inDoubt).toBe(mayHaveGone.size);
      expect([...inDoubt].sort()).toEqual([...mayHaveGone].sort());
      // Honest counts: every copy the relay got is submitted or in doubt, and nothing went after.
      expect([...relay.received.keys()].filter((a) => !submitted.has(a) && !inDoubt.has(a))).toEqual([]);
      expect([...submitted].filter((a) => !relay.received.has(a))).toEqual([]);
      expect(relay.duplicated()).toEqual([]);
      // Nothing went out after the cancel but what was in flight: the new worker sent nothing.
      expect(relay.total()).toBe(copiesBefore);
      // The supervisor logs once its statement has committed: the line may reach us just after.
      await until(
        'the survivor to say why',
        () => survivor.output().includes('in a cancelled send are cancelled, in doubt'),
        5_000,
        () => survivor.output(),
      );
      process.stdout.write(
        `cancel racing a kill: ${progress.submitted} submitted, ${progress.cancelled} cancelled of which ${progress.inDoubt} in doubt; ` +
          `the relay had ${relay.total()} copies (${relay.total() - progress.submitted} of the in-doubt ones)\n`,
      );
    });
  }, 120_000);

  it('a temporary failure answered after the cancel: the message is cancelled, not queued again, and the send settles', async () => {
    const READERS = 20;
    // RCPT TO waits until the test has cancelled the send, then is refused for now (451).
    let answer: () => void = () => undefined;
    const cancelledYet = new Promise<void>((resolve) => (answer = resolve));
    const onRcpt = async () => {
      await cancelledYet;
      return { code: 451, message: '4.7.1 Try again later' };
    };
    await withSendWorld({ worker: true, env: ENV, relay: { onRcpt }, readers: READERS }, async ({ t, relay }) => {
      const { issueId, sendId } = await startSend(t, 'Cancel racing a temporary failure');
      // As many messages claimed as the pool has connections (a worker takes a slot of its
      // concurrency limit before it claims), all of them waiting at RCPT TO; the rest queued.
      await until(
        'the pool at RCPT TO, its messages claimed',
        async () => relay.rcptWaiting === Number(ENV.SMTP_POOL_SIZE) && (await messageCounts(t, sendId)).sending === Number(ENV.SMTP_POOL_SIZE),
        30_000,
        () => `${relay.rcptWaiting} at RCPT TO`,
      );

      const cancelled = await editor(t).control(issueId, 'cancel');
      expect(cancelled.status).toBe(200);
      answer();

      const settled = await until(
        'no message queued or sending',
        async () => {
          const c = await messageCounts(t, sendId);
          return c.queued + c.sending === 0 ? c : undefined;
        },
        20_000,
        async () => JSON.stringify(await messageCounts(t, sendId)),
      );
      expect(settled).toEqual({ queued: 0, sending: 0, submitted: 0, failed: 0, bounced: 0, cancelled: READERS });
      // Every message cancelled, none in doubt: the send mailed nobody, so the supervisor forgets
      // it and the issue is what it was before the send (issue 14). Until then the progress
      // reads cancelled; from then on there is no send.
      const forgotten = await until(
        'the supervisor to forget the send that mailed nobody',
        async () => {
          const res = await editor(t).api('GET', `/api/issues/${issueId}/send`);
          if (res.statusCode === 200) expect(res.json()).toMatchObject({ status: 'cancelled', cancelled: READERS, inDoubt: 0 });
          return res.statusCode === 404 && res;
        },
        20_000,
      );
      expect(forgotten.json()).toMatchObject({ error: { code: 'not_found' } });
      expect((await editor(t).api('GET', `/api/issues/${issueId}`)).json()).toMatchObject({ state: 'draft' });
      expect(relay.total()).toBe(0);
    });
  }, 60_000);

  describe('the same races, statement against statement', () => {
    let t: TestContext;
    afterAll(() => t?.close());

    /** A sending send with one claimed message, claimed `ageSeconds` ago. */
    async function claimedMessage(ageSeconds: number): Promise<{ sendId: number; messageId: number }> {
      t ??= await createTestContext();
      const issue = await editor(t).createIssue(`Race ${Date.now()}`);
      const {
        rows: [send],
      } = await t.c.pool.query<{ id: number }>(
        `INSERT INTO sends (issue_id, status, audience_at, started_at, fanout_done, total) VALUES ($1, 'sending', now(), now(), true, 2) RETURNING id`,
        [issue.id],
      );
      const {
        rows: [message],
      } = await t.c.pool.query<{ id: number }>(
        `INSERT INTO messages (send_id, subscriber_id, status, attempts, claimed_at)
         VALUES ($1, 1, 'sending', 1, now() - make_interval(secs => $2::int)), ($1, 2, 'queued', 0, NULL) RETURNING id`,
        [send!.id, ageSeconds],
      );
      return { sendId: send!.id, messageId: message!.id };
    }

    async function statusOf(messageId: number): Promise<{ status: string; in_doubt: boolean }> {
      const { rows } = await t.c.pool.query('SELECT status::text, in_doubt FROM messages WHERE id = $1', [messageId]);
      return rows[0];
    }

    it('a release committing while a cancel is under way waits for it and leaves the message cancelled', async () => {
      const { sendId, messageId } = await claimedMessage(0);
      const cancel = await openCancel(t, sendId);
      let releasing: Promise<void> | undefined;
      try {
        releasing = releaseMessage(t.c.pool, messageId, '451 4.7.1 Try again later');
        await someoneWaitsForLock(t);
      } finally {
        await cancel.commit();
      }
      await releasing;
      expect(await statusOf(messageId)).toEqual({ status: 'cancelled', in_doubt: false });
      expect(await messageCounts(t, sendId)).toMatchObject({ queued: 0, sending: 0, cancelled: 2 });
    });

    it("recovering a dead worker's claim while a cancel is under way waits for it: the message is cancelled and in doubt", async () => {
      const { sendId, messageId } = await claimedMessage(3600);
      const cancel = await openCancel(t, sendId);
      let recovering: ReturnType<typeof recoverStuck> | undefined;
      try {
        recovering = recoverStuck(t.c.pool, 60);
        await someoneWaitsForLock(t);
      } finally {
        await cancel.commit();
      }
      expect(await recovering).toEqual([{ send_id: sendId, recovered: 1, in_doubt: 1 }]);
      expect(await statusOf(messageId)).toEqual({ status: 'cancelled', in_doubt: true });
      expect(await messageCounts(t, sendId)).toMatchObject({ queued: 0, sending: 0, cancelled: 2 });
    });
  });
});
