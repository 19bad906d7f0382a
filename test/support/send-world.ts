import type { Writable } from 'node:stream';
import { createTestContext, type TestContext } from './context.js';
import { editor, workersIdle } from './editor.js';
import { seedActiveReaders } from './readers.js';
import { Relay, type RelayOptions } from './relay.js';
import { copiesAt } from './send-checks.js';
import { withDeadline } from './wait.js';
import { outputsOf, startWorkerProcess, type WorkerProcess } from './worker-process.js';

// The world of one send under test (test/chaos, test/sending/crash.test.ts): its own database,
// Redis prefix and SMTP relay, active readers, and the workers, in this process or as real
// worker processes.

/**
 * The settings the fault tests send with (plus their own SMTP_POOL_SIZE): claims older than 3 s
 * are a dead worker's (the supervisor looks every second), a failed delivery is tried again after
 * 1 s, and 20 deliveries run at once, so a fault and its recovery fit in seconds.
 */
export const QUICK_RECOVERY = {
  SENDING_TIMEOUT_SECONDS: '3',
  RETRY_DELAY_SECONDS: '1',
  DELIVERY_CONCURRENCY: '20',
} as const;

export type SendWorld = {
  t: TestContext;
  ed: ReturnType<typeof editor>;
  /** The relay the context's SMTP_URL points at. */
  relay: Relay;
  /** Every relay of the world, that one first. */
  relays: Relay[];
  workers: WorkerProcess[];
  /** Starts a worker process configured like the test context, plus `env`; fails if it has not started within 30 s. */
  startWorker(name: string, env?: Record<string, string>): Promise<WorkerProcess>;
  /** Another relay in the same world (its copies count with the others). */
  addRelay(opts?: RelayOptions): Promise<Relay>;
  /** Copies the relays received, per recipient address. */
  copies(): Map<string, number>;
  totalCopies(): number;
};

export type SendWorldOptions = {
  /** The service's variables, over the test context's. */
  env?: Record<string, string>;
  relay?: RelayOptions;
  /** Active readers `reader<i>@example.com`, seeded before `fn` runs (see seedActiveReaders). */
  readers?: number;
  /** A worker in this process (the context's), as well as any worker processes `fn` starts. */
  worker?: boolean;
  /** Where the context's log goes (see createTestContext). */
  logTo?: Writable;
};

/**
 * Runs `fn` in a world of its own, then checks that no Postgres client was left checked out
 * (once the in-process worker, if any, is idle). A failure carries the tail of the worker
 * processes' output, which is what explains it. Whatever happens, the worker processes are
 * killed, the context closed and the relays stopped.
 */
export async function withSendWorld(opts: SendWorldOptions, fn: (w: SendWorld) => Promise<void>): Promise<void> {
  const relay = await new Relay(opts.relay).start();
  const relays = [relay];
  const workers: WorkerProcess[] = [];
  let t: TestContext | undefined;
  try {
    t = await createTestContext({ worker: opts.worker ?? false, logTo: opts.logTo, env: { ...opts.env, SMTP_URL: relay.url } });
    const ctx = t;
    const w: SendWorld = {
      t: ctx,
      ed: editor(ctx),
      relay,
      relays,
      workers,
      async startWorker(name, env) {
        const p = startWorkerProcess(ctx.config, { name, env });
        workers.push(p);
        await withDeadline(p.started, 30_000, `${name} did not start`, () => outputsOf([p]));
        return p;
      },
      async addRelay(o) {
        const r = new Relay(o);
        relays.push(r);
        return r.start();
      },
      copies: () => copiesAt(relays),
      totalCopies: () => relays.reduce((sum, r) => sum + r.total(), 0),
    };
    if (opts.readers) await seedActiveReaders(ctx, opts.readers);
    await fn(w);
    if (ctx.worker) await workersIdle(ctx);
    ctx.assertNoLeaks();
  } catch (err) {
    if (err instanceof Error && workers.length > 0) err.message += `\n\nworker output (tail):\n${outputsOf(workers).slice(-20_000)}`;
    throw err;
  } finally {
    for (const p of workers) p.kill('SIGKILL');
    await Promise.all(workers.map((p) => p.exited));
    await t?.close();
    for (const r of relays) await r.stop();
  }
}
