// A send cancelled after it reached some readers, then sent again to the readers it did not
// reach (issue 14), with worker processes SIGKILLed mid-send in both sends. What must hold:
// nobody gets the issue twice (beyond what was in flight at the second kill), every reader the
// first send did not reach gets it from the second, and a reader whose message is in doubt (the
// relay may have it) is never mailed again.
import { afterAll, describe, expect, it } from '@jest/globals';
import { editor } from '../support/editor.js';
import type { RcptAnswer } from '../support/relay.js';
import { inFlight, messageCounts, startSend } from '../support/send-checks.js';
import { QUICK_RECOVERY, withSendWorld } from '../support/send-world.js';
import { until } from '../support/wait.js';
import { killAllWorkerProcesses } from '../support/worker-process.js';

const ENV = { ...QUICK_RECOVERY, SMTP_POOL_SIZE: '5' };
const READERS = 300;

afterAll(() => killAllWorkerProcesses());

describe('a new send to the readers a cancelled send did not reach, with crashed workers', () => {
  it('nobody twice: the in-doubt are left alone, the rest get exactly one copy', async () => {
    // The first relay holds RCPT TO after its first 30 until the other worker is sending too, so
    // the first worker cannot finish the send alone however slowly the other one starts.
    let otherIsSending: () => void = () => undefined;
    const bothSending = new Promise<void>((resolve) => (otherIsSending = resolve));
    let rcpts = 0;
    const onRcpt = async (): Promise<RcptAnswer> => {
      if (++rcpts > 30) await bothSending;
      return undefined;
    };
    await withSendWorld({ env: ENV, relay: { answerDelayMs: 100, onRcpt }, readers: READERS }, async (w) => {
      const { t } = w;
      const ed = editor(t);
      // The first worker takes the fan-out job (alone when the send starts) and lives throughout.
      await w.startWorker('fan-out');
      const { issueId, sendId } = await startSend(t, 'Cancelled, then sent to the rest');
      await until('the first copies', () => w.totalCopies() >= 20, 30_000);
      const second = await w.addRelay({ answerDelayMs: 100 });
      const other = await w.startWorker('other', { SMTP_URL: second.url });
      await until('the other worker sending too', () => second.total() >= 10, 30_000);
      otherIsSending();

      // The other worker dies as the send is cancelled: its claims become in doubt.
      other.kill('SIGKILL');
      expect((await ed.control(issueId, 'cancel')).status).toBe(200);
      await other.exited;
      await until(
        'the cancelled send to settle',
        async () => {
          const c = await messageCounts(t, sendId);
          return c.queued + c.sending === 0;
        },
        20_000,
      );
      const first = await ed.progress(issueId);
      expect(first).toMatchObject({ status: 'cancelled', failed: 0, bounced: 0 });
      expect(first.submitted).toBeGreaterThan(0);
      expect(first.submitted + first.inDoubt).toBeLessThan(READERS);
      const { rows: inDoubtRows } = await t.c.pool.query<{ email: string }>(
        'SELECT s.email FROM messages m JOIN subscribers s ON s.id = m.subscriber_id WHERE m.send_id = $1 AND m.in_doubt',
        [sendId],
      );
      const inDoubt = new Set(inDoubtRows.map((r) => r.email));
      const copiesAfterFirst = new Map(w.copies());

      // The audience of the new send: everyone but the submitted and the in doubt.
      const audience = (await ed.api('GET', `/api/issues/${issueId}/audience`)).json().audience as number;
      expect(audience).toBe(READERS - first.submitted - first.inDoubt);
      const issueNow = (await ed.api('GET', `/api/issues/${issueId}`)).json();
      expect(issueNow.state).toBe('cancelled');

      // A scheduled follow-up is refused; one now goes to the rest.
      const scheduled = await ed.api('POST', `/api/issues/${issueId}/send`, { scheduledAt: new Date(Date.now() + 3600_000).toISOString() });
      expect([scheduled.statusCode, scheduled.json().error.code]).toEqual([409, 'follow_up_now_only']);
      // A third worker, up before the new send starts (so it shares the send however fast the
      // first one goes), dies in the middle of it.
      const third = await w.addRelay({ answerDelayMs: 100 });
      const late = await w.startWorker('late', { SMTP_URL: third.url });
      const again = await ed.trigger(issueId, { expectAudience: audience });
      expect(again).toMatchObject({ id: sendId, status: 'sending', issueState: 'sending' });
      await until('the late worker sending', () => third.total() >= 10, 30_000);
      late.kill('SIGKILL');
      await late.exited;
      const mayDuplicate = await inFlight(t, sendId);

      const done = await ed.waitForStatus(issueId, 'done', 60_000);
      expect(done).toMatchObject({ total: READERS, failed: 0, bounced: 0, queued: 0, sending: 0 });
      expect(done.submitted + done.inDoubt).toBe(READERS);
      expect(await messageCounts(t, sendId)).toEqual({
        queued: 0,
        sending: 0,
        submitted: READERS - inDoubt.size,
        failed: 0,
        bounced: 0,
        cancelled: inDoubt.size,
      });

      const copies = w.copies();
      // The in doubt got nothing from the new send.
      for (const a of inDoubt) expect([a, copies.get(a) ?? 0]).toEqual([a, copiesAfterFirst.get(a) ?? 0]);
      // Everyone else got the issue, once; twice only if in flight at the second kill.
      const { rows } = await t.c.pool.query<{ email: string }>(`SELECT email FROM subscribers WHERE status = 'active'`);
      const missing = rows.map((r) => r.email).filter((a) => !inDoubt.has(a) && !copies.has(a));
      expect(missing).toEqual([]);
      const twice = [...copies].filter(([, n]) => n > 1).map(([a]) => a);
      expect(twice.filter((a) => !mayDuplicate.has(a))).toEqual([]);
      expect([...copies].filter(([, n]) => n > 2)).toEqual([]);
      // Nobody the first send reached got a copy from the second (but what was in flight at the second kill).
      for (const [a, n] of copiesAfterFirst) if (!mayDuplicate.has(a)) expect([a, copies.get(a)]).toEqual([a, n]);
      process.stdout.write(
        `follow-up send: first ${first.submitted} submitted, ${first.inDoubt} in doubt; then ${READERS - first.submitted - first.inDoubt} more; ${twice.length} twice (in flight at the second kill)\n`,
      );
    });
  }, 180_000);
});
