// `npm run bench:send`: a whole send of a ~30 KB issue into a discarding SMTP server on loopback.
//
//   npm run bench:send -- [--readers 20000] [--workers 2] [--concurrency 50] [--pool 20]
//                         [--window N] [--ceiling-readers N] [--source-messages N]
//                         [--source-sessions 20] [--worker-script P] [--sink auto|postfix|node]
//   npm run bench:send -- --fanout-only --readers 1000000
//
// Needs Postgres (TEST_DATABASE_SERVER_URL, as the tests, default postgres://127.0.0.1:5432) and
// Redis (REDIS_URL). BENCH_WORKER_NODE_ARGS adds node flags to the worker processes (e.g.
// "--cpu-prof --cpu-prof-dir=/tmp/prof").
//
// One run, in a fresh database `broadside_bench_<ts>` and a fresh queue prefix, built with the
// tests' support (bench/world.ts):
//  1. N active readers (one INSERT … SELECT generate_series) and the issue bench/issue-30kb.md,
//     created through the real code (createIssue: Markdown → MJML → templates);
//  2. a discarding SMTP sink on loopback: Postfix's smtp-sink when installed, else bench/sink.ts;
//  3. the physical yardstick: Postfix's smtp-source (reused sessions, the message's size) into
//     the same sink, before the end-to-end run and again after it;
//     the ceiling: this process, no queue and no database, sends the same messages prebuilt as
//     raw MIME (IssueMime, as a worker builds them) through one pooled nodemailer transport;
//     the queue floor: this process adds as many deliver jobs as the send has readers (up to
//     20,000) and takes them with a BullMQ worker that does nothing, with the service's queue
//     options: BullMQ's own CPU a message, in this process and in Redis;
//  4. end to end: W worker processes (`node dist/bin/worker.js`, as `npm run start:worker`
//     runs them: the script builds first), the send
//     triggered with triggerSend (as POST /api/issues/:id/send does), sampled every 250 ms;
//  5. a report (the end-to-end rate as a share of smtp-source's and of the ceiling's, CPU per
//     message of each component against its budget); then the children are stopped, the database dropped and the Redis keys deleted.
// `--fanout-only` measures only the fan-out (message rows for every reader), batch by batch
// exactly as src/sending/fanout.ts does, with no workers and no feeding.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { createSmtpMailer } from '../src/delivery/mailer.js';
import { CopyMaker } from '../src/delivery/prepare-copy.js';
import { createIssue } from '../src/issues/authoring.js';
import { parseIssueFile } from '../src/issues/issue-file.js';
import { findIssue } from '../src/issues/queries.js';
import { createQueues, deliverJob, queueNames, type DeliverJob } from '../src/queues/index.js';
import { createWorkerConnection } from '../src/redis.js';
import { triggerSend } from '../src/sending/control.js';
import { FANOUT_BATCH, FEED_CHUNK } from '../src/sending/fanout.js';
import { createSend, fanOutBatch, findSend, progressOf } from '../src/sending/queries.js';
import { deleteKeys, keysOf, REDIS_URL } from '../test/support/redis-keys.js';
import {
  cleaningUp,
  cpuOf,
  createBenchWorld,
  fmt,
  intFlag,
  log,
  onCleanup,
  postfixSinkInstalled,
  postfixSourceInstalled,
  printedLines,
  root,
  runBenchmark,
  runSmtpSource,
  secs,
  startBenchWorkers,
  startSink,
  type BenchWorld,
  type Sink,
  type SourceRun,
} from './world.js';

const SAMPLE_MS = 250;
const STATUS_POLL_MS = 50;
/** The ceiling keeps at most this many distinct prebuilt messages in memory and cycles them. */
const CEILING_BUDGET_BYTES = 256 * 1024 * 1024;

// ── flags ────────────────────────────────────────────────────────────────────────────────────

const { values: flags } = parseArgs({
  options: {
    readers: { type: 'string', default: '20000' },
    workers: { type: 'string', default: '2' },
    concurrency: { type: 'string', default: '50' },
    pool: { type: 'string', default: '20' },
    window: { type: 'string' },
    'ceiling-readers': { type: 'string' },
    'source-messages': { type: 'string' },
    'source-sessions': { type: 'string', default: '20' },
    'queue-jobs': { type: 'string' },
    'worker-script': { type: 'string', default: 'dist/bin/worker.js' },
    sink: { type: 'string', default: 'auto' },
    timeout: { type: 'string' },
    'fanout-only': { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});

if (flags.help) {
  process.stdout.write(`npm run bench:send -- [flags]
  --readers N          active readers (default 20000: the issue's check; about a minute a run)
  --workers N          worker processes (default 2)
  --concurrency N      DELIVERY_CONCURRENCY of each worker (default 50, the service's default)
  --pool N             SMTP_POOL_SIZE of each worker (default 20, the service's default); the ceiling uses N × workers
  --window N           SEND_WINDOW (default: the service's default)
  --ceiling-readers N  messages sent by the ceiling (default min(readers, 20000); 0 skips it)
  --source-messages N  messages Postfix's smtp-source sends before and after the send (default min(readers, 20000); 0 skips it)
  --source-sessions N  smtp-source's parallel reused sessions (-d -s N, default 20)
  --queue-jobs N       jobs of the queue floor, BullMQ alone (default min(readers, 20000); 0 skips it)
  --worker-script P    the worker to run (default dist/bin/worker.js), e.g. an older build to compare
  --sink auto|postfix|node   which discarding SMTP server (default auto: smtp-sink when installed)
  --timeout S          give up on the end-to-end send after S seconds
  --fanout-only        only time the fan-out's message rows (e.g. --readers 1000000)
`);
  process.exit(0);
}

const READERS = intFlag('readers', flags.readers, 1);
const WORKERS = intFlag('workers', flags.workers, 1);
const CONCURRENCY = intFlag('concurrency', flags.concurrency, 1);
const POOL = intFlag('pool', flags.pool, 1);
const WINDOW = flags.window === undefined ? undefined : intFlag('window', flags.window, 10);
const CEILING_READERS = flags['ceiling-readers'] === undefined ? Math.min(READERS, 20_000) : intFlag('ceiling-readers', flags['ceiling-readers'], 0);
const SOURCE_MESSAGES = flags['source-messages'] === undefined ? Math.min(READERS, 20_000) : intFlag('source-messages', flags['source-messages'], 0);
const QUEUE_JOBS = flags['queue-jobs'] === undefined ? Math.min(READERS, 20_000) : intFlag('queue-jobs', flags['queue-jobs'], 0);
const SOURCE_SESSIONS = intFlag('source-sessions', flags['source-sessions'], 1);
const WORKER_SCRIPT = path.resolve(root, flags['worker-script']!);
const TIMEOUT_S = flags.timeout === undefined ? Math.max(300, Math.ceil(READERS / 100)) : intFlag('timeout', flags.timeout, 1);
if (!['auto', 'postfix', 'node'].includes(flags.sink!)) {
  process.stderr.write(`--sink must be auto, postfix or node, got "${flags.sink}"\n`);
  process.exit(2);
}

// ── small helpers ────────────────────────────────────────────────────────────────────────────

const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MB`;

function table(rows: [string, string, string?][]): string {
  const w0 = Math.max(...rows.map((r) => r[0].length));
  const w1 = Math.max(...rows.map((r) => r[1].length));
  return rows.map(([a, b, c]) => `  ${a.padEnd(w0)}  ${b.padStart(w1)}${c ? `   ${c}` : ''}`).join('\n');
}

const percentile = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))]!;

/** Resident and peak resident memory of a process, in bytes, from /proc (undefined once gone). */
async function memoryOf(pid: number): Promise<{ rss: number; hwm: number } | undefined> {
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0) * 1024;
    return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
  } catch {
    return undefined;
  }
}

async function redisUsedMemory(redis: Redis): Promise<number> {
  return Number(/^used_memory:(\d+)/m.exec(await redis.info('memory'))?.[1] ?? NaN);
}

/** Redis's own count of calls and time per command (INFO commandstats), whole server. */
async function redisCommandStats(redis: Redis): Promise<Map<string, { calls: number; usec: number }>> {
  const out = new Map<string, { calls: number; usec: number }>();
  for (const m of (await redis.info('commandstats')).matchAll(/^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/gm))
    out.set(m[1]!, { calls: Number(m[2]), usec: Number(m[3]) });
  return out;
}

/** Transactions committed in this database so far (pg_stat_statements is not loaded here). */
async function commitsOf(w: World): Promise<number> {
  const { rows } = await w.c.pool.query<{ n: string }>('SELECT xact_commit AS n FROM pg_stat_database WHERE datname = current_database()');
  return Number(rows[0]!.n);
}

/** CPU seconds used so far by each Postgres backend serving this database, by pid. */
async function postgresCpu(w: World): Promise<Map<number, number>> {
  const { rows } = await w.c.pool.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE datname = current_database()');
  return new Map(await Promise.all(rows.map(async (b) => [b.pid, await cpuOf(b.pid)] as const)));
}

async function redisCpu(redis: Redis): Promise<number> {
  const info = await redis.info('cpu');
  return Number(/^used_cpu_sys:([\d.]+)/m.exec(info)?.[1] ?? 0) + Number(/^used_cpu_user:([\d.]+)/m.exec(info)?.[1] ?? 0);
}

/** The keys of our queue prefix and what Redis says they take (MEMORY USAGE, summed). */
async function prefixMemory(redis: Redis, prefix: string): Promise<{ keys: number; bytes: number }> {
  const keys = await keysOf(redis, prefix);
  let bytes = 0;
  for (let i = 0; i < keys.length; i += 1000) {
    const p = redis.pipeline();
    for (const k of keys.slice(i, i + 1000)) p.call('MEMORY', 'USAGE', k);
    for (const [, v] of (await p.exec()) ?? []) bytes += Number(v) || 0;
  }
  return { keys: keys.length, bytes };
}

// ── 1. database, readers, issue ──────────────────────────────────────────────────────────────

type World = BenchWorld & { issueId: number };

async function createWorld(smtpUrl: string): Promise<World> {
  const w = await createBenchWorld({
    readers: READERS,
    // Every third reader has a name (a personal greeting).
    namedEvery: 3,
    env: {
      SMTP_URL: smtpUrl,
      DELIVERY_CONCURRENCY: String(CONCURRENCY),
      SMTP_POOL_SIZE: String(POOL),
      ...(WINDOW !== undefined ? { SEND_WINDOW: String(WINDOW) } : {}),
    },
  });
  const t = performance.now();
  const source = await readFile(path.join(root, 'bench/issue-30kb.md'), 'utf8');
  const issue = await createIssue(w.c.pool, w.c.renderer, parseIssueFile(source));
  log(
    `issue ${issue.id} "${issue.slug}" created (${fmt(Buffer.byteLength(issue.markdown) / 1024, 1)} KB of Markdown, HTML ${fmt(issue.html_bytes / 1024, 1)} KB) in ${secs(performance.now() - t)}`,
  );
  return { ...w, issueId: issue.id };
}

// ── 2. the discarding SMTP sink: bench/world.ts ───────────────────────────────────────────────

// ── 3. the ceiling: prebuilt raw MIME, one pooled transport, no queue, no database ───────────

type Ceiling = {
  sent: number;
  errors: number;
  distinct: number;
  ms: number;
  poolSize: number;
  inflight: number;
  buildUs: number;
  bytes: number;
  cpu: number;
  sinkCpu: number;
};

/** Builds a reader's copy as a worker does: CopyMaker (src/delivery/prepare-copy.ts), as SendCopies uses it. */
async function ceilingBuilder(w: World) {
  const { c } = w;
  const issue = (await findIssue(c.pool, w.issueId))!;
  // Send id 0 and subscriber ids standing in for message ids: no send exists yet.
  const maker = new CopyMaker(c);
  const mime = maker.forSend(issue, { id: 0, started_at: new Date() });
  return (r: { id: number; email: string; name: string | null }) => {
    const copy = maker.readerCopy(mime, { messageId: r.id, subscriberId: r.id, email: r.email, name: r.name });
    return { to: copy.envelope.to, raw: copy.raw, copy };
  };
}

async function runCeiling(w: World, sink: Sink, count: number): Promise<Ceiling> {
  const { c, config } = w;
  const build = await ceilingBuilder(w);
  const { rows: first } = await c.pool.query<{ id: number; email: string; name: string | null }>('SELECT id, email, name FROM subscribers ORDER BY id LIMIT 1');
  const size = build(first[0]!).raw.length;
  // Prebuilt for every message when they fit the budget; else a prefix of readers, cycled.
  const distinct = Math.max(1, Math.min(count, Math.floor(CEILING_BUDGET_BYTES / size)));
  const { rows: readers } = await c.pool.query<{ id: number; email: string; name: string | null }>(
    'SELECT id, email, name FROM subscribers ORDER BY id LIMIT $1',
    [distinct],
  );
  const t = performance.now();
  const messages = readers.map(build);
  const buildUs = ((performance.now() - t) * 1000) / messages.length;

  const poolSize = POOL * WORKERS;
  const inflight = CONCURRENCY * WORKERS;
  const mailer = createSmtpMailer({ smtpUrl: `smtp://127.0.0.1:${sink.port}`, from: config.mailFrom, poolSize });
  let next = 0;
  let errors = 0;
  const {
    ms,
    cpu,
    other: sinkCpu,
  } = await measured(
    () =>
      Promise.all(
        Array.from({ length: inflight }, async () => {
          while (next < count) {
            const m = messages[next++ % messages.length]!;
            try {
              await mailer.sendRaw(m.copy);
            } catch {
              errors++;
            }
          }
        }),
      ),
    () => cpuOf(sink.pid),
  );
  await mailer.close();
  return { sent: count - errors, errors, distinct: messages.length, ms, poolSize, inflight, buildUs, bytes: size, cpu, sinkCpu };
}

/**
 * Runs `work` and says how long it took, the CPU seconds this process used meanwhile, and how far
 * `otherCpu` (another process's CPU seconds: the sink's, Redis's) moved.
 */
async function measured(work: () => Promise<unknown>, otherCpu: () => Promise<number>): Promise<{ ms: number; cpu: number; other: number }> {
  const cpu0 = process.cpuUsage();
  const other0 = await otherCpu();
  const t = performance.now();
  await work();
  const ms = performance.now() - t;
  const cpu = process.cpuUsage(cpu0);
  return { ms, cpu: (cpu.user + cpu.system) / 1e6, other: (await otherCpu()) - other0 };
}

// ── 3b. the queue floor: BullMQ alone, as the service uses it, with a processor that does nothing ──

type QueueFloor = { jobs: number; add: { ms: number; cpu: number; redis: number }; take: { ms: number; cpu: number; redis: number } };

/**
 * What one deliver job costs BullMQ itself: `jobs` jobs added as the fan-out adds them (addBulk in
 * chunks of 1,000, the service's job options and ids), then taken by one Worker with the
 * workers' connection settings and DELIVERY_CONCURRENCY, whose processor returns at once. The
 * CPU of this process and of the Redis server, per job, for each half: a floor under the
 * workers' and Redis's CPU per message that nothing of ours can lower, short of changing BullMQ.
 */
async function runQueueFloor(w: World, jobs: number): Promise<QueueFloor> {
  const { config } = w;
  const prefix = `${config.queuePrefix}-floor`;
  onCleanup('queue floor keys', () => deleteKeys(prefix));
  const sampler = new Redis(REDIS_URL);
  const producer = new Redis(REDIS_URL);
  // A connection error fails the addBulk or the worker below; here it is only said.
  const queues = createQueues(producer, prefix, { attempts: config.deliveryAttempts, delayMs: config.retryDelaySeconds * 1000 }, (err, queue) =>
    log(`queue floor: ${queue}: ${err.message}`),
  );
  const phase = async (work: () => Promise<unknown>) => {
    const { ms, cpu, other } = await measured(work, () => redisCpu(sampler));
    return { ms, cpu, redis: other };
  };
  const add = await phase(async () => {
    for (let i = 0; i < jobs; i += FEED_CHUNK) {
      await queues.deliver.addBulk(Array.from({ length: Math.min(FEED_CHUNK, jobs - i) }, (_, j) => deliverJob(1, { id: i + j + 1, attempts: 0 }, 0)));
    }
  });
  const connection = createWorkerConnection(REDIS_URL);
  let taken = 0;
  let worker: Worker<DeliverJob> | undefined;
  const take = await phase(
    () =>
      new Promise<void>((resolve, reject) => {
        worker = new Worker<DeliverJob>(
          queueNames.deliver,
          async () => {
            if (++taken === jobs) resolve();
            return 'submitted';
          },
          { connection, prefix, concurrency: CONCURRENCY },
        );
        worker.on('error', reject);
      }),
  );
  await worker!.close();
  await queues.close();
  for (const r of [connection, producer, sampler]) r.disconnect();
  await deleteKeys(prefix);
  return { jobs, add, take };
}

// ── 4. end to end: worker processes, a real send ─────────────────────────────────────────────

type Sample = { t: number; rss: number[]; redis: number };

async function runEndToEnd(w: World, sink: Sink) {
  const { c } = w;
  const redis = new Redis(REDIS_URL);
  onCleanup('sampler redis', async () => redis.disconnect());
  const queuePrefix = w.config.queuePrefix;

  let t = performance.now();
  // BENCH_WORKER_NODE_ARGS, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof", to profile the workers.
  const nodeArgs = (process.env.BENCH_WORKER_NODE_ARGS ?? '').split(/\s+/).filter(Boolean);
  const { workers } = await startBenchWorkers(w, WORKERS, { script: WORKER_SCRIPT, nodeArgs });
  log(`${WORKERS} worker processes ready in ${secs(performance.now() - t)} (pids ${workers.map((wk) => wk.pid).join(', ')})`);
  await sleep(500); // let their start-up settle (supervisor pass, first connections)

  const idleRss = await Promise.all(workers.map(async (wk) => (await memoryOf(wk.pid))?.rss ?? 0));
  const redisBaseline = await redisUsedMemory(redis);
  const sinkBefore = sink.counters().mesg;
  const cpu0 = {
    workers: await Promise.all(workers.map((wk) => cpuOf(wk.pid))),
    sink: await cpuOf(sink.pid),
    redis: await redisCpu(redis),
    self: process.cpuUsage(),
    commands: await redisCommandStats(redis),
    commits: await commitsOf(w),
    // Our own connections are older than the send: what they spent on the set-up is not its cost.
    postgres: await postgresCpu(w),
  };

  // Sampling: memory of every worker and of Redis every 250 ms; our keys (SCAN + MEMORY USAGE
  // of each, which costs Redis a little) every 8 s.
  const samples: Sample[] = [];
  let prefixPeak = { keys: 0, bytes: 0 };
  let sampling = true;
  const pgSeen = new Map(cpu0.postgres);
  const sampler = (async () => {
    for (let tick = 0; sampling; tick++) {
      try {
        const rss = await Promise.all(workers.map(async (wk) => (await memoryOf(wk.pid))?.rss ?? 0));
        samples.push({ t: Date.now(), rss, redis: await redisUsedMemory(redis) });
        // A backend that exits before the end (a pool's idle connection) takes its CPU with it:
        // each is read every second, and counted up to its last reading.
        if (tick % 4 === 0) for (const [pid, cpu] of await postgresCpu(w)) if (cpu > 0) pgSeen.set(pid, cpu);
        if (tick % 32 === 0) {
          const p = await prefixMemory(redis, queuePrefix);
          if (p.bytes > prefixPeak.bytes) prefixPeak = p;
        }
      } catch (err) {
        if (cleaningUp()) return; // interrupted: the connections are going away
        throw err;
      }
      await sleep(SAMPLE_MS);
    }
  })();
  onCleanup('sampler', async () => {
    sampling = false;
    await sampler.catch(() => undefined);
  });

  // Trigger, as POST /api/issues/:id/send does.
  const triggeredAt = Date.now();
  const { send } = await triggerSend(c, w.issueId);
  let fanoutDoneAt: number | undefined;
  let status = send.status as string;
  const deadline = triggeredAt + TIMEOUT_S * 1000;
  while (status === 'sending') {
    const dead = workers.find((wk) => !wk.running);
    if (dead) throw new Error(`${dead.name} (pid ${dead.pid}) died during the send: ${dead.output().slice(-2000)}`);
    if (Date.now() > deadline) throw new Error(`the send did not finish within ${TIMEOUT_S} s (--timeout)`);
    await sleep(STATUS_POLL_MS);
    const { rows } = await c.pool.query<{ status: string; fanout_done: boolean }>('SELECT status, fanout_done FROM sends WHERE id = $1', [send.id]);
    status = rows[0]!.status;
    if (rows[0]!.fanout_done && fanoutDoneAt === undefined) fanoutDoneAt = Date.now();
  }
  const doneAt = Date.now();
  sampling = false;
  await sampler;
  if (status !== 'done') throw new Error(`the send ended ${status}`);

  const cpu1 = {
    workers: await Promise.all(workers.map((wk) => cpuOf(wk.pid))),
    sink: await cpuOf(sink.pid),
    redis: await redisCpu(redis),
    self: process.cpuUsage(cpu0.self),
    commands: await redisCommandStats(redis),
    commits: await commitsOf(w),
  };
  // Redis's busiest commands over the send (whole server) and Postgres's commits (this database).
  const redisCommands = [...cpu1.commands]
    .map(([name, v]) => ({ name, calls: v.calls - (cpu0.commands.get(name)?.calls ?? 0), usec: v.usec - (cpu0.commands.get(name)?.usec ?? 0) }))
    .filter((x) => x.calls > 0)
    .sort((a, b) => b.usec - a.usec);
  // pg_stat_database's counters arrive from the backends with a delay of up to a second.
  await sleep(1000);
  const commits = (await commitsOf(w)) - cpu0.commits;
  // Postgres backends serving this database (the workers' pools and ours), CPU since the trigger
  // (since they started, for those that started since; until they exited, for those gone).
  for (const [pid, cpu] of await postgresCpu(w)) if (cpu > 0) pgSeen.set(pid, cpu);
  let pgCpu = 0;
  for (const [pid, cpu] of pgSeen) pgCpu += cpu - (cpu0.postgres.get(pid) ?? 0);
  const peaks = await Promise.all(workers.map(async (wk) => (await memoryOf(wk.pid))?.hwm ?? 0));

  // Everything below comes from the message rows.
  const final = (await findSend(c.pool, send.id))!;
  const progress = await progressOf(c.pool, send.id);
  const {
    rows: [lat],
  } = await c.pool.query<{ p: number[]; mean: number }>(
    `SELECT percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY extract(epoch FROM submitted_at - claimed_at)) AS p,
            avg(extract(epoch FROM submitted_at - claimed_at))::float8 AS mean
       FROM messages WHERE send_id = $1 AND status = 'submitted'`,
    [send.id],
  );
  // When a quarter, half, three quarters and all of the messages had been submitted.
  const {
    rows: [quart],
  } = await c.pool.query<{ at: Date[] }>(
    `SELECT percentile_disc(ARRAY[0.25, 0.5, 0.75, 1.0]) WITHIN GROUP (ORDER BY submitted_at) AS at
       FROM messages WHERE send_id = $1 AND status = 'submitted'`,
    [send.id],
  );
  const {
    rows: [during],
  } = await c.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM messages WHERE send_id = $1 AND status = 'submitted' AND submitted_at <= $2`, [
    send.id,
    new Date(fanoutDoneAt ?? doneAt),
  ]);
  // A moment for the sink's counter line to arrive.
  await sleep(300);
  const sinkReceived = sink.counters().mesg - sinkBefore;

  t = performance.now();
  await Promise.all(workers.map((wk) => wk.stop(30_000)));
  const stopMs = performance.now() - t;

  const rssAt = (when: number) => (samples.find((s) => s.t >= when) ?? samples[samples.length - 1]!).rss;
  return {
    send: final,
    progress,
    triggeredAt,
    fanoutDoneAt,
    doneAt,
    latency: { p50: lat!.p?.[0] ?? NaN, p99: lat!.p?.[1] ?? NaN, mean: lat!.mean },
    submittedDuringFanout: during!.n,
    rssQuartiles: (quart!.at ?? []).map((d) => rssAt(d.getTime())),
    rssPeakSampled: workers.map((_, i) => Math.max(0, ...samples.map((s) => s.rss[i]!))),
    rssPeakAt: workers.map((_, i) => samples.reduce((best, s) => (s.rss[i]! > best.rss[i]! ? s : best), samples[0]!).t - triggeredAt),
    rssHwm: peaks,
    idleRss,
    redisBaseline,
    redisPeak: Math.max(redisBaseline, ...samples.map((s) => s.redis)),
    prefixPeak,
    samples: samples.length,
    sinkReceived,
    cpu: {
      workers: cpu1.workers.map((x, i) => x - cpu0.workers[i]!),
      sink: cpu1.sink - cpu0.sink,
      redis: cpu1.redis - cpu0.redis,
      postgres: pgCpu,
      self: (cpu1.self.user + cpu1.self.system) / 1e6,
    },
    printed: printedLines(workers),
    stopMs,
    redisCommands,
    commits,
  };
}

// ── 5. fan-out only ──────────────────────────────────────────────────────────────────────────

async function runFanoutOnly(w: World) {
  const { c } = w;
  // The send, without its fan-out job: nothing else touches it while we time the batches.
  const created = await createSend(c.pool, w.issueId, null);
  const sendId = created!.send.id;
  const batchMs: number[] = [];
  const t0 = performance.now();
  for (;;) {
    // One step of src/sending/fanout.ts: read the send (its checkpoint), write the next batch.
    const t = performance.now();
    const send = (await findSend(c.pool, sendId))!;
    const batch = await fanOutBatch(c.pool, send, FANOUT_BATCH);
    batchMs.push(performance.now() - t);
    if (!batch) throw new Error('fanOutBatch did nothing: the send is not sending, or its checkpoint moved');
    if (batch.done) break;
  }
  const ms = performance.now() - t0;
  const send = (await findSend(c.pool, sendId))!;
  const {
    rows: [count],
  } = await c.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM messages WHERE send_id = $1', [sendId]);
  const {
    rows: [size],
  } = await c.pool.query<{ table: string; indexes: string }>(
    `SELECT pg_size_pretty(pg_table_size('messages')) AS table, pg_size_pretty(pg_indexes_size('messages')) AS indexes`,
  );
  return { ms, batchMs, total: send.total, rows: count!.n, size: size! };
}

/** The size of one reader's copy of the bench issue, as a worker builds it. */
async function copySize(w: World): Promise<number> {
  const { rows } = await w.c.pool.query<{ id: number; email: string; name: string | null }>('SELECT id, email, name FROM subscribers ORDER BY id LIMIT 1');
  return (await ceilingBuilder(w))(rows[0]!).raw.length;
}

/** Per-message CPU budgets of issue 16 (µs, for a ~90 KB message). */
const CPU_BUDGET_US = { workers: 500, postgres: 250, redis: 100 } as const;

/** What nodemailer (the ceiling) and BullMQ (the queue floor) cost alone, in µs a message, when measured. */
type Floors = { nodemailer?: number; bullmq?: number; bullmqRedis?: number };

function cpuRows(
  cpu: { workers: number[]; sink: number; redis: number; postgres: number; self: number },
  total: number,
  seconds: number,
  floors: Floors = {},
): [string, string, string][] {
  const us = (s: number) => `${((s * 1e6) / total).toFixed(0)} µs`;
  const budget = (s: number, max: number) => `budget ≤ ${max} µs: ${(s * 1e6) / total <= max ? 'met' : 'MISSED'}`;
  const workers = cpu.workers.reduce((a, b) => a + b, 0);
  const parts = [
    floors.nodemailer === undefined ? undefined : `nodemailer ${floors.nodemailer.toFixed(0)}`,
    floors.bullmq === undefined ? undefined : `BullMQ ${floors.bullmq.toFixed(0)}`,
  ].filter((x) => x !== undefined);
  const workersFloor = parts.length ? `; alone, ${parts.join(' + ')} µs of it` : '';
  const redisFloor = floors.bullmqRedis === undefined ? '' : `; BullMQ alone ${floors.bullmqRedis.toFixed(0)} µs`;
  return [
    [
      'CPU per message: workers',
      us(workers),
      `${cpu.workers.map((x) => x.toFixed(1)).join(' + ')} s; ${budget(workers, CPU_BUDGET_US.workers)}${workersFloor}`,
    ],
    ['CPU per message: Postgres', us(cpu.postgres), `${cpu.postgres.toFixed(1)} s, this database's backends; ${budget(cpu.postgres, CPU_BUDGET_US.postgres)}`],
    ['CPU per message: Redis', us(cpu.redis), `${cpu.redis.toFixed(1)} s, the whole server; ${budget(cpu.redis, CPU_BUDGET_US.redis)}${redisFloor}`],
    ['CPU per message: sink', us(cpu.sink), `${cpu.sink.toFixed(1)} s`],
    ['CPU seconds: this process (sampling)', cpu.self.toFixed(1), `of ${(seconds * 2).toFixed(1)} core-seconds on 2 cores from trigger to done`],
  ];
}

// ── main ─────────────────────────────────────────────────────────────────────────────────────

async function main(): Promise<void> {
  const mode = flags['fanout-only'] ? 'fan-out only' : 'end to end';
  console.log(`Broadside send benchmark — ${mode} (node ${process.version}, ${fmt(READERS)} readers)\n`);

  if (flags['fanout-only']) {
    const w = await createWorld('smtp://127.0.0.1:9');
    const r = await runFanoutOnly(w);
    console.log(`\nFan-out of ${fmt(READERS)} readers (batches of ${fmt(FANOUT_BATCH)}, one INSERT … SELECT each, as src/sending/fanout.ts):\n`);
    console.log(
      table([
        [
          'message rows written',
          fmt(r.rows),
          r.rows === READERS && r.total === READERS ? 'ok (= readers = sends.total)' : `MISMATCH: readers ${READERS}, sends.total ${r.total}`,
        ],
        [
          'fan-out time',
          secs(r.ms),
          READERS >= 1_000_000
            ? `target < 60 s for 1,000,000 (${r.ms < 60_000 ? 'met' : 'MISSED'})`
            : `${secs((r.ms * 1_000_000) / READERS)} per 1,000,000 at this rate (target < 60 s)`,
        ],
        ['rows per second', fmt((r.rows / r.ms) * 1000)],
        ['batches', fmt(r.batchMs.length)],
        [
          'per batch p50 / p90 / max',
          `${percentile(r.batchMs, 0.5).toFixed(0)} / ${percentile(r.batchMs, 0.9).toFixed(0)} / ${Math.max(...r.batchMs).toFixed(0)} ms`,
        ],
        ['messages table / indexes', `${r.size.table} / ${r.size.indexes}`],
      ]),
    );
    return;
  }

  if (flags.sink === 'postfix' && !postfixSinkInstalled()) throw new Error('/usr/sbin/smtp-sink is not installed (Debian package postfix)');
  const sink = await startSink({ postfix: flags.sink === 'postfix' || (flags.sink === 'auto' && postfixSinkInstalled()) });
  log(`SMTP sink: ${sink.name} on 127.0.0.1:${sink.port}`);
  const w = await createWorld(`smtp://127.0.0.1:${sink.port}`);

  const messageBytes = await copySize(w);
  const sources: SourceRun[] = [];
  const source = async (when: string) => {
    if (SOURCE_MESSAGES === 0 || !postfixSourceInstalled()) return;
    log(`smtp-source ${when}: ${fmt(SOURCE_MESSAGES)} messages of ${fmt(messageBytes)} bytes over ${SOURCE_SESSIONS} reused sessions…`);
    const r = await runSmtpSource(sink, { messages: SOURCE_MESSAGES, sessions: SOURCE_SESSIONS, bytes: messageBytes });
    log(`smtp-source ${when}: ${fmt((r.messages / r.ms) * 1000)} messages/s`);
    sources.push(r);
  };
  if (SOURCE_MESSAGES > 0 && !postfixSourceInstalled()) log('smtp-source is not installed (Debian package postfix): no physical yardstick');
  await source('before');

  let ceiling: Ceiling | undefined;
  if (CEILING_READERS > 0) {
    log(`ceiling: ${fmt(CEILING_READERS)} prebuilt messages through one pooled nodemailer transport…`);
    ceiling = await runCeiling(w, sink, CEILING_READERS);
    log(`ceiling: ${fmt((ceiling.sent / ceiling.ms) * 1000)} messages/s`);
  }

  let floor: QueueFloor | undefined;
  if (QUEUE_JOBS > 0) {
    log(`queue floor: ${fmt(QUEUE_JOBS)} deliver jobs added and taken by a BullMQ worker that does nothing…`);
    floor = await runQueueFloor(w, QUEUE_JOBS);
    log(`queue floor: ${fmt((QUEUE_JOBS / floor.take.ms) * 1000)} jobs/s taken`);
  }

  // µs a message of each part alone: printed with its own yardstick and beside the budgets.
  const floors: Floors = {
    nodemailer: ceiling ? (ceiling.cpu * 1e6) / ceiling.sent : undefined,
    bullmq: floor ? ((floor.add.cpu + floor.take.cpu) * 1e6) / floor.jobs : undefined,
    bullmqRedis: floor ? ((floor.add.redis + floor.take.redis) * 1e6) / floor.jobs : undefined,
  };

  log(`end to end: ${WORKERS} workers × DELIVERY_CONCURRENCY ${CONCURRENCY}, SMTP_POOL_SIZE ${POOL}, SEND_WINDOW ${w.config.sendWindow}…`);
  const e = await runEndToEnd(w, sink);
  await source('after');
  const total = e.send.total;
  const sendMs = e.send.finished_at!.getTime() - e.send.started_at!.getTime();
  const rate = (total / sendMs) * 1000;
  const fanoutMs = e.fanoutDoneAt !== undefined ? e.fanoutDoneAt - e.triggeredAt : NaN;
  const ceilingRate = ceiling ? (ceiling.sent / ceiling.ms) * 1000 : NaN;
  const afterFanout = total - e.submittedDuringFanout;
  const afterMs = e.doneAt - (e.fanoutDoneAt ?? e.doneAt);

  console.log(`\nSink: ${sink.name}`);
  console.log(`Message: ${fmt(messageBytes)} bytes of MIME per reader (30 KB Markdown issue, HTML + text, quoted-printable)\n`);
  const sourceRates = sources.map((r) => (r.messages / r.ms) * 1000);
  const sourceRate = sourceRates.length ? sourceRates.reduce((a, b) => a + b, 0) / sourceRates.length : NaN;
  if (sources.length) {
    console.log(`Physical limit — Postfix's smtp-source into the same sink (${sources[0]!.command}):\n`);
    console.log(
      table(
        sources.map((r, i): [string, string, string] => [
          `smtp-source ${i === 0 ? 'before' : 'after'} the send`,
          `${fmt(sourceRates[i]!)} messages/s`,
          `${fmt(r.received)} received in ${secs(r.ms)}; CPU per message: smtp-source ${((r.cpu * 1e6) / r.messages).toFixed(0)} µs, sink ${((r.sinkCpu * 1e6) / r.messages).toFixed(0)} µs`,
        ]),
      ),
    );
    console.log('');
  }
  if (ceiling) {
    console.log(
      `Ceiling — one process, one pooled nodemailer transport (${ceiling.poolSize} connections = ${POOL} × ${WORKERS} workers), ${ceiling.inflight} messages in flight, no queue, no database:\n`,
    );
    console.log(
      table([
        [
          'messages sent',
          `${fmt(ceiling.sent)}${ceiling.errors ? ` (${ceiling.errors} errors)` : ''}`,
          `${fmt(ceiling.distinct)} distinct prebuilt messages${ceiling.distinct < CEILING_READERS ? ', cycled' : ''} (built at ${ceiling.buildUs.toFixed(1)} µs each, not timed)`,
        ],
        ['time', secs(ceiling.ms)],
        ['messages per second', fmt(ceilingRate)],
        [
          'CPU: sender process / sink',
          `${ceiling.cpu.toFixed(1)} s / ${ceiling.sinkCpu.toFixed(1)} s`,
          `${floors.nodemailer!.toFixed(0)} / ${((ceiling.sinkCpu * 1e6) / ceiling.sent).toFixed(0)} µs per message`,
        ],
      ]),
    );
    console.log('');
  }
  if (floor) {
    const per = (s: number) => `${((s * 1e6) / floor.jobs).toFixed(0)} µs`;
    console.log(
      `Queue floor — BullMQ alone: ${fmt(floor.jobs)} deliver jobs, the service's options, one worker × concurrency ${CONCURRENCY}, a processor that does nothing:\n`,
    );
    console.log(
      table([
        [
          `adding (addBulk, ${fmt(FEED_CHUNK)} a call)`,
          `${fmt((floor.jobs / floor.add.ms) * 1000)} jobs/s`,
          `CPU per job: this process ${per(floor.add.cpu)}, Redis ${per(floor.add.redis)}`,
        ],
        [
          'taking and finishing',
          `${fmt((floor.jobs / floor.take.ms) * 1000)} jobs/s`,
          `CPU per job: this process ${per(floor.take.cpu)}, Redis ${per(floor.take.redis)}`,
        ],
        [
          'BullMQ a message, both halves',
          `${floors.bullmq!.toFixed(0)} µs / ${floors.bullmqRedis!.toFixed(0)} µs`,
          `this process / Redis, before any work of ours (budgets a message: workers ${CPU_BUDGET_US.workers} µs, Redis ${CPU_BUDGET_US.redis} µs)`,
        ],
      ]),
    );
    console.log('');
  }
  const rssTargetMet = Math.max(...e.rssHwm) < 250 * 1024 * 1024;
  const redisDelta = e.redisPeak - e.redisBaseline;
  console.log(`End to end — ${WORKERS} worker processes × DELIVERY_CONCURRENCY ${CONCURRENCY}, SMTP_POOL_SIZE ${POOL}, SEND_WINDOW ${w.config.sendWindow}:\n`);
  console.log(
    table([
      [
        'messages (sends.total)',
        fmt(total),
        `submitted ${fmt(e.progress.submitted)}, failed ${e.progress.failed}, bounced ${e.progress.bounced}, cancelled ${e.progress.cancelled}; the sink counted ${fmt(e.sinkReceived)}`,
      ],
      ['fan-out time (trigger → fanout_done)', secs(fanoutMs), `observed by polling every ${STATUS_POLL_MS} ms; rows written while delivery runs`],
      ['send time (started_at → finished_at)', secs(sendMs)],
      ['end to end messages per second', fmt(rate), `target ≥ 1,200 (stretch 1,500): ${rate >= 1500 ? 'stretch met' : rate >= 1200 ? 'met' : 'MISSED'}`],
      [
        '  …of the ceiling',
        ceiling ? `${fmt((rate / ceilingRate) * 100)} %` : 'n/a',
        ceiling ? `target ≥ 60 %: ${rate / ceilingRate >= 0.6 ? 'met' : 'MISSED'}` : '',
      ],
      [
        "  …of smtp-source's rate (the physical limit)",
        sources.length ? `${fmt((rate / sourceRate) * 100)} %` : 'n/a',
        sources.length
          ? `of ${fmt(sourceRate)} messages/s (the mean of ${sourceRates.map((x) => fmt(x)).join(' and ')}); target ≥ 60 % (stretch 75 %): ${rate / sourceRate >= 0.75 ? 'stretch met' : rate / sourceRate >= 0.6 ? 'met' : 'MISSED'}`
          : '',
      ],
      [
        '  …during fan-out / after it',
        `${fmt(e.submittedDuringFanout / (fanoutMs / 1000))} / ${afterMs > 0 ? fmt(afterFanout / (afterMs / 1000)) : 'n/a'}`,
        `messages/s (${fmt(e.submittedDuringFanout)} submitted before fanout_done)`,
      ],
      [
        'per-message latency p50 / p99',
        `${(e.latency.p50 * 1000).toFixed(1)} / ${(e.latency.p99 * 1000).toFixed(1)} ms`,
        `mean ${(e.latency.mean * 1000).toFixed(1)} ms; submitted_at − claimed_at (see below)`,
      ],
      ...e.rssHwm.map((hwm, i): [string, string, string] => [
        `worker ${i + 1} peak RSS`,
        mb(hwm),
        `VmHWM; RSS idle before the send ${mb(e.idleRss[i]!)}, sampled peak ${mb(e.rssPeakSampled[i]!)} at +${(e.rssPeakAt[i]! / 1000).toFixed(1)} s; at 25/50/75/100 % submitted: ${e.rssQuartiles.map((q) => mb(q[i]!)).join(' / ')}`,
      ]),
      ['  worker memory target (< 250 MB)', rssTargetMet ? 'met' : 'MISSED'],
      [
        'Redis used_memory, peak − baseline',
        mb(redisDelta),
        `baseline ${mb(e.redisBaseline)}, peak ${mb(e.redisPeak)} (whole server: other tenants count too); target < 100 MB: ${redisDelta < 100 * 1024 * 1024 ? 'met' : 'MISSED'}`,
      ],
      ['Redis, our keys at their peak', mb(e.prefixPeak.bytes), `${fmt(e.prefixPeak.keys)} keys under the queue prefix (MEMORY USAGE, sampled every 8 s)`],
      ...cpuRows(e.cpu, total, (e.doneAt - e.triggeredAt) / 1000, floors),
      [
        'Postgres commits per message',
        (e.commits / total).toFixed(2),
        `${fmt(e.commits)} transactions committed in this database during the send (pg_stat_database)`,
      ],
      ...e.redisCommands
        .slice(0, 5)
        .map((x): [string, string, string] => [
          `  Redis ${x.name}`,
          `${(x.usec / total).toFixed(0)} µs`,
          `per message; ${(x.calls / total).toFixed(2)} calls per message (INFO commandstats, whole server)`,
        ]),
      ['samples', fmt(e.samples), `every ${SAMPLE_MS} ms`],
      ['worker shutdown (SIGTERM → exit)', secs(e.stopMs)],
    ]),
  );
  console.log(`
  Latency is measured per message from its claim (the UPDATE queued → sending, claimed_at) to
  the batched status write (sending → submitted, submitted_at): building its MIME, waiting for a
  pooled SMTP connection, the SMTP transaction and up to 10 ms of group commit. Time spent
  waiting in the queue before the claim is not included.`);
  if (e.printed.lines > 0) {
    console.log(`\n  The workers printed ${e.printed.lines} line(s) (LOG_LEVEL=warn); the first:\n    ${e.printed.sample.join('\n    ')}`);
  }
  if (e.progress.submitted !== READERS || e.sinkReceived < total) {
    console.log(`\n  WARNING: ${fmt(READERS)} readers, ${fmt(e.progress.submitted)} submitted, ${fmt(e.sinkReceived)} received by the sink.`);
  }
}

await runBenchmark('bench:send', main);
