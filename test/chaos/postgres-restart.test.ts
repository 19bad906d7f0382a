// Postgres going away under a running send (issue 12, item 1), end to end: a Postgres of the
// test's own, restarted or cut off mid-send, under the real entry points in child processes: a
// worker (`npm run start:worker`) and the API with a worker in one process (`npm start`).
//
// What must hold: no process exits; the API answers 503 database_unavailable while Postgres is
// away and recovers by itself; the send completes within a stated time; every active reader has
// exactly one `submitted` message; and no reader gets a second copy. (The guarantee would allow
// a second copy of a message in flight on a cut connection; claims renewed by live workers and
// status writes retried until they commit leave none, and the test asserts none.)
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { pino } from 'pino';
import { prepareDatabase } from '../../src/boot.js';
import { parseConfig } from '../../src/config/index.js';
import { createTestContext, TEST_TOKEN, type TestContext } from '../support/context.js';
import { OwnPostgres } from '../support/own-postgres.js';
import { seedActiveReaders } from '../support/readers.js';
import { Relay } from '../support/relay.js';
import { expectEachReaderOnce, messageCounts, sendStatus } from '../support/send-checks.js';
import { QUICK_RECOVERY } from '../support/send-world.js';
import { until } from '../support/wait.js';
import { killAllWorkerProcesses, outputsOf, startWorkerProcess, type WorkerProcess } from '../support/worker-process.js';

const READERS = 1000;
const ENV = { ...QUICK_RECOVERY, SMTP_POOL_SIZE: '4' };
/** How long Postgres stays down: longer than SENDING_TIMEOUT_SECONDS, so every claim looks old when it returns. */
const OUTAGE_MS = 5_000;
/**
 * The bound on finishing once Postgres is back, beyond the time the rest of the send takes at
 * its own pace before the fault (measured: the machine running the tests may be busy). Deliveries
 * wait RETRY_DELAY_SECONDS (1 s) between tries; the fan-out tries again every 5 s at most; a claim
 * whose commit reached Postgres but whose answer did not is nobody's, and recovery queues it
 * again after SENDING_TIMEOUT_SECONDS (3 s) plus a supervisor pass (1 s).
 */
const RECOVERY_ALLOWANCE_MS = 20_000;
/** The rest of the send may take this many times as long as at its pace before the fault. */
const SLOWDOWN = 2;

let pg: OwnPostgres;
let t: TestContext;
let relay: Relay;
const procs: WorkerProcess[] = [];
let service: WorkerProcess;

beforeAll(async () => {
  pg = await OwnPostgres.start();
  const databaseUrl = pg.url('broadside');
  // The service's own preparation: create the database, apply the migrations.
  await prepareDatabase(parseConfig({ DATABASE_URL: databaseUrl }), pino({ level: 'silent' }));
  relay = new Relay({ answerDelayMs: 20 });
  await relay.start();
  t = await createTestContext({ databaseUrl, env: { ...ENV, SMTP_URL: relay.url } });
  await seedActiveReaders(t, READERS);
  procs.push(startWorkerProcess(t.config, { name: 'worker' }));
  service = startWorkerProcess(t.config, { name: 'npm start', entry: 'start' });
  procs.push(service);
  await Promise.all(procs.map((p) => p.started));
}, 120_000);

afterAll(async () => {
  await killAllWorkerProcesses();
  await t?.close();
  await relay?.stop();
  await pg?.destroy();
}, 60_000);

/** The parts of the API's JSON answers these tests read. */
type Answer = { id: number; error?: { code: string }; checks: Record<string, string> };

/** A request to the `npm start` process's API. */
async function api(path: string, init: { method?: string; body?: unknown } = {}): Promise<{ status: number; headers: Headers; body: Answer }> {
  const res = await fetch(`http://127.0.0.1:${service.port}${path}`, {
    method: init.method ?? 'GET',
    headers: { authorization: `Bearer ${TEST_TOKEN}`, accept: 'application/json', ...(init.body !== undefined ? { 'content-type': 'application/json' } : {}) },
    body: init.body !== undefined ? JSON.stringify(init.body) : undefined,
  });
  const text = await res.text();
  const json = (res.headers.get('content-type') ?? '').includes('application/json');
  return { status: res.status, headers: res.headers, body: json ? JSON.parse(text) : text };
}

/** Triggers a send through the `npm start` process's API. */
async function trigger(subject: string): Promise<{ issueId: number; sendId: number }> {
  const created = await api('/api/issues', { method: 'POST', body: { subject, markdown: `Intro.\n\n## Section\n\n${subject}.` } });
  expect(created.status).toBe(201);
  const sent = await api(`/api/issues/${created.body.id}/send`, { method: 'POST', body: {} });
  expect(sent.status).toBe(202);
  return { issueId: created.body.id, sendId: sent.body.id };
}

/** Fails at once when a process has exited. */
function checkRunning(): void {
  const gone = procs.filter((p) => !p.running);
  if (gone.length) throw new Error(`${gone.map((p) => p.name).join(', ')} exited`);
}

async function waitForCopies(n: number): Promise<void> {
  await until(
    `${n} copies`,
    () => {
      checkRunning();
      return relay.total() >= n;
    },
    60_000,
    () => `${relay.total()} copies`,
  );
}

async function waitForDone(sendId: number, timeoutMs: number): Promise<void> {
  await until(
    `send ${sendId} done`,
    async () => {
      checkRunning();
      return (await sendStatus(t, sendId)) === 'done';
    },
    timeoutMs,
    async () => JSON.stringify(await messageCounts(t, sendId)),
  );
}

/**
 * Runs a test body; a failure carries the warnings and errors the processes logged (their whole
 * output goes to a file named in the message), which is what explains it.
 */
async function explained(fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
  } catch (err) {
    if (err instanceof Error) {
      const file = path.join(tmpdir(), `broadside-postgres-restart-${Date.now()}.log`);
      await writeFile(file, outputsOf(procs));
      const notable = outputsOf(procs)
        .split('\n')
        .filter((l) => !l.startsWith('{"level":30'))
        .join('\n');
      err.message += `\n\nwarnings and errors the processes logged (all of it in ${file}):\n${notable.slice(-20_000)}`;
    }
    throw err;
  }
}

/** Log lines of the child processes whose msg matches. */
function logged(msg: RegExp): number {
  return procs.reduce(
    (n, p) =>
      n +
      p
        .output()
        .split('\n')
        .filter((l) => msg.test(l)).length,
    0,
  );
}

describe('Postgres goes away under a running send', () => {
  it(
    'stopped at once (pg_ctl -m immediate) for longer than SENDING_TIMEOUT_SECONDS, then started: nobody exits, the API says 503 database_unavailable meanwhile, the send completes, nobody gets two copies',
    () =>
      explained(async () => {
        relay.reset();
        const startedAt = Date.now();
        const { issueId, sendId } = await trigger('Postgres stopped mid-send');
        await waitForCopies(READERS / 4);
        const pace = (Date.now() - startedAt) / relay.total();
        const atStop = await messageCounts(t, sendId);
        expect(atStop.sending).toBeGreaterThan(0);
        expect(atStop.queued).toBeGreaterThan(0);

        await pg.stopServer('immediate');
        const downAt = Date.now();
        try {
          // The API process stays up and says what is wrong, in the documented error shape.
          expect((await api('/healthz')).status).toBe(200);
          const progress = await api(`/api/issues/${issueId}/send`);
          expect([progress.status, progress.body?.error?.code]).toEqual([503, 'database_unavailable']);
          expect(progress.headers.get('retry-after')).toBeTruthy();
          // A reader signing up, and a download that streams: a 503 too, not a 500 or a cut response.
          const signup = await api('/subscribe', { method: 'POST', body: { email: 'during-the-outage@example.com' } });
          expect([signup.status, signup.body?.error?.code]).toEqual([503, 'database_unavailable']);
          const csv = await api('/api/subscribers/export');
          expect([csv.status, csv.body?.error?.code]).toEqual([503, 'database_unavailable']);
          const ready = await api('/readyz');
          expect(ready.status).toBe(503);
          expect(ready.body.checks.postgres).not.toBe('ok');
          // A deliberate outage length, not a synchronisation: every claim is older than
          // SENDING_TIMEOUT_SECONDS when Postgres returns.
          await sleep(Math.max(0, OUTAGE_MS - (Date.now() - downAt)));
          checkRunning();
        } finally {
          await pg.startServer();
        }
        const upAt = Date.now();

        await until('the API ready again', async () => (await api('/readyz')).status === 200, 30_000);
        const boundMs = SLOWDOWN * pace * (READERS - atStop.submitted) + RECOVERY_ALLOWANCE_MS;
        await waitForDone(sendId, boundMs - (Date.now() - upAt));
        const tookMs = Date.now() - upAt;
        checkRunning();
        const duplicated = await expectEachReaderOnce(t, sendId, READERS, relay);
        expect(duplicated).toEqual([]);
        process.stdout.write(
          `postgres stop/start: send done ${tookMs} ms after Postgres returned (bound ${Math.round(boundMs)} ms, outage ${OUTAGE_MS} ms); ` +
            `${logged(/status write failed/)} status writes retried, ${logged(/Postgres unavailable: delivery waits/)} deliveries waited, ` +
            `${logged(/stuck in sending/)} recoveries, duplicates ${duplicated.length}\n`,
        );
      }),
    180_000,
  );

  it(
    'every broadside connection terminated (pg_terminate_backend) three times mid-send: nobody exits, the send completes, nobody gets two copies',
    () =>
      explained(async () => {
        relay.reset();
        const startedAt = Date.now();
        const { sendId } = await trigger('Connections terminated mid-send');
        let terminated = 0;
        await waitForCopies(READERS * 0.2);
        const pace = (Date.now() - startedAt) / relay.total();
        for (const share of [0.2, 0.45, 0.7]) {
          await waitForCopies(READERS * share);
          terminated += await pg.terminateBackends('broadside');
        }
        expect(terminated).toBeGreaterThan(0);
        const boundMs = SLOWDOWN * pace * READERS + 3 * RECOVERY_ALLOWANCE_MS;
        await waitForDone(sendId, boundMs - (Date.now() - startedAt));
        checkRunning();
        const duplicated = await expectEachReaderOnce(t, sendId, READERS, relay);
        expect(duplicated).toEqual([]);
        process.stdout.write(
          `pg_terminate_backend x3 (${terminated} connections): send took ${Date.now() - startedAt} ms (bound ${Math.round(boundMs)} ms); duplicates ${duplicated.length}\n`,
        );
      }),
    180_000,
  );

  it(
    'a claim that looks abandoned when Postgres returns from a restart is given a whole SENDING_TIMEOUT_SECONDS from the restart before recovery takes it',
    () =>
      explained(async () => {
        // A claim nobody renews (its worker is gone), taken just before Postgres goes down, in a
        // paused send (so that once recovered it stays queued and its recovery time stays readable).
        const issue = await t.app.inject({ method: 'POST', url: '/api/issues', headers: t.auth, payload: { subject: 'Orphan claim', markdown: 'Text.' } });
        const {
          rows: [send],
        } = await t.c.pool.query<{ id: number }>(
          `INSERT INTO sends (issue_id, status, audience_at, started_at, fanout_done, total) VALUES ($1, 'paused', now(), now(), true, 1) RETURNING id`,
          [issue.json().id],
        );
        const {
          rows: [message],
        } = await t.c.pool.query<{ id: number }>(
          `INSERT INTO messages (send_id, subscriber_id, status, attempts, claimed_at)
       SELECT $1, min(id), 'sending', 1, now() FROM subscribers RETURNING id`,
          [send!.id],
        );
        await pg.stopServer('immediate');
        await sleep(OUTAGE_MS);
        await pg.startServer();

        // Older than the timeout when Postgres returns: the supervisors of both processes look every
        // second, yet recovery waits until SENDING_TIMEOUT_SECONDS after the restart.
        await until(
          'the orphan claim recovered',
          async () => {
            const { rows } = await t.c.pool
              .query<{ status: string }>('SELECT status::text FROM messages WHERE id = $1', [message!.id])
              .catch(() => ({ rows: [] }));
            return rows[0]?.status === 'queued';
          },
          30_000,
        );
        // Recovery stamps updated_at.
        const {
          rows: [timing],
        } = await t.c.pool.query<{ after_restart: number }>(
          'SELECT extract(epoch FROM updated_at - pg_postmaster_start_time())::float AS after_restart FROM messages WHERE id = $1',
          [message!.id],
        );
        const timeout = Number(ENV.SENDING_TIMEOUT_SECONDS);
        expect(timing!.after_restart).toBeGreaterThanOrEqual(timeout);
        // Within a supervisor pass or two of the timeout (a pass every second).
        expect(timing!.after_restart).toBeLessThan(timeout + 5);
        process.stdout.write(`orphan claim: recovered ${timing!.after_restart.toFixed(1)} s after the restart (timeout ${timeout} s)\n`);
      }),
    120_000,
  );
});
