// A slow relay (issue 12, item 2): with every SMTP command answered slowly, claims lived far
// longer than SENDING_TIMEOUT_SECONDS. Before claims were renewed, the supervisor took them for a
// dead worker's, queued them again, and readers got two copies with no crash at all. (Claims
// then waited for a pooled connection; now a worker takes a slot of its concurrency limit,
// at most SMTP_POOL_SIZE, before it claims, so here each transaction itself outlasts the
// timeout.) The real worker entry point runs in a child process.
//
// What must hold: no reader gets two copies, no message is claimed twice, and no live worker's
// claim is recovered ("stuck in sending"); the send finishes within a bound set by the relay's pace.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestContext, type TestContext } from '../support/context.js';
import { seedActiveReaders } from '../support/readers.js';
import { Relay } from '../support/relay.js';
import { expectEachReaderOnce, messageCounts, sendStatus, startSend } from '../support/send-checks.js';
import { QUICK_RECOVERY } from '../support/send-world.js';
import { until } from '../support/wait.js';
import { killAllWorkerProcesses, outputsOf, startWorkerProcess, type WorkerProcess } from '../support/worker-process.js';

const READERS = 16;
/** Each command the relay lets us hook (greeting, MAIL FROM, RCPT TO, end of DATA) takes this long. */
const COMMAND_DELAY_MS = 1_200;
const ENV = { ...QUICK_RECOVERY, SMTP_POOL_SIZE: '4' };
/**
 * A message takes at least three slow answers (~3.6 s, the first on a connection four) on an
 * open connection, longer than SENDING_TIMEOUT_SECONDS, so four connections pass about one
 * message a second and the send takes about 16 s. The bound leaves room for a loaded machine.
 */
const SEND_BOUND_MS = 90_000;

let t: TestContext;
let relay: Relay;
let worker: WorkerProcess;

beforeAll(async () => {
  relay = new Relay({ commandDelayMs: COMMAND_DELAY_MS });
  await relay.start();
  t = await createTestContext({ env: { ...ENV, SMTP_URL: relay.url } });
  await seedActiveReaders(t, READERS);
  worker = startWorkerProcess(t.config, { name: 'worker' });
  await worker.started;
}, 60_000);

afterAll(async () => {
  await killAllWorkerProcesses();
  await t?.close();
  await relay?.stop();
});

describe('a relay slower than the sending timeout', () => {
  it("claims held longer than SENDING_TIMEOUT_SECONDS by a slow relay stay their worker's: nobody gets two copies, nothing is recovered", async () => {
    try {
      const startedAt = Date.now();
      const { sendId } = await startSend(t, 'Slow relay');
      // While the send runs, how long each message has been seen `sending` without a break: the
      // fault's shape is a live worker's claim older than the timeout.
      const sendingSince = new Map<number, number>();
      let longestClaimMs = 0;
      await until(
        'the send done',
        async () => {
          if (!worker.running) throw new Error('the worker exited');
          const { rows } = await t.c.pool.query<{ id: number }>(`SELECT id FROM messages WHERE send_id = $1 AND status = 'sending'`, [sendId]);
          const now = Date.now();
          const sending = new Set(rows.map((r) => r.id));
          for (const id of sendingSince.keys()) if (!sending.has(id)) sendingSince.delete(id);
          for (const id of sending) {
            if (!sendingSince.has(id)) sendingSince.set(id, now);
            longestClaimMs = Math.max(longestClaimMs, now - sendingSince.get(id)!);
          }
          return (await sendStatus(t, sendId)) === 'done';
        },
        SEND_BOUND_MS,
        async () => JSON.stringify(await messageCounts(t, sendId)),
      );
      const tookMs = Date.now() - startedAt;

      expect(worker.running).toBe(true);
      const duplicated = await expectEachReaderOnce(t, sendId, READERS, relay);
      expect(duplicated).toEqual([]);
      // Each message was claimed exactly once: no claim was taken over or queued again.
      const { rows } = await t.c.pool.query<{ attempts: number; n: number }>(
        'SELECT attempts, count(*)::int AS n FROM messages WHERE send_id = $1 GROUP BY attempts',
        [sendId],
      );
      expect(rows).toEqual([{ attempts: 1, n: READERS }]);
      expect(worker.output()).not.toContain('stuck in sending');
      // The fault's condition did arise: claims lived well past SENDING_TIMEOUT_SECONDS.
      expect(longestClaimMs).toBeGreaterThan(Number(ENV.SENDING_TIMEOUT_SECONDS) * 1000 + 1000);
      process.stdout.write(`slow relay: ${READERS} readers in ${tookMs} ms, longest claim ${longestClaimMs} ms, duplicates ${duplicated.length}\n`);
    } catch (err) {
      if (err instanceof Error) err.message += `\n\nworker output (tail):\n${outputsOf([worker]).slice(-20_000)}`;
      throw err;
    }
  }, 120_000);
});
