// `npm run bench:throttle`: the same send against a relay that accepts everything and against one
// that answers 421 to a share of the transactions, in one run, so the two rates are comparable.
//
//   npm run bench:throttle -- [--readers 10000] [--throttle-every 5] [--workers 1] [--timeout 900]
//
// Needs Postgres (BENCH_DATABASE_SERVER_URL or TEST_DATABASE_SERVER_URL, default
// postgres://127.0.0.1:5432) and Redis (REDIS_URL). The script builds dist/ first (npm run build).
//
// One run, in a fresh database and queue prefix, with the service's defaults (RETRY_DELAY_SECONDS,
// DELIVERY_CONCURRENCY, SMTP_POOL_SIZE…):
//  1. N active readers and, per phase, one issue made from bench/issue-30kb.md;
//  2. per phase, a relay (bench/sink.ts, smtp-server) that discards what it gets: first one that
//     accepts every transaction, then one that answers `421` to every Nth MAIL FROM and closes
//     the connection (N = 5: 20 % of transactions);
//  3. W worker processes (`node dist/bin/worker.js`) against that relay, the send triggered, and
//     timed from its start to `done`;
//  4. a report: messages/s of each phase and their ratio, what the relay refused, how the
//     message rows ended, and what the workers' /metrics say about the adaptive limit.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import pg from 'pg';
import { pino } from 'pino';
import { parseConfig, type AppConfig } from '../src/config/index.js';
import { createContainer, type Container } from '../src/container.js';
import { withDefaultUser } from '../src/db/connection-url.js';
import { ensureDatabase, quoteIdent } from '../src/db/ensure-database.js';
import { migrate } from '../src/db/migrate.js';
import { createIssue } from '../src/issues/authoring.js';
import { parseIssueFile } from '../src/issues/issue-file.js';
import { triggerSend } from '../src/sending/control.js';
import { findSend, progressOf } from '../src/sending/queries.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const SERVER_URL = (process.env.BENCH_DATABASE_SERVER_URL ?? process.env.TEST_DATABASE_SERVER_URL ?? 'postgres://127.0.0.1:5432').replace(/\/+$/, '');
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

const { values: flags } = parseArgs({
  options: {
    readers: { type: 'string', default: '10000' },
    'throttle-every': { type: 'string', default: '5' },
    workers: { type: 'string', default: '1' },
    timeout: { type: 'string', default: '900' },
    'worker-script': { type: 'string', default: 'dist/bin/worker.js' },
    only: { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});

if (flags.help) {
  process.stdout.write(`npm run bench:throttle -- [flags]
  --readers N          active readers (default 10000)
  --throttle-every N   the throttling relay answers 421 to every Nth MAIL FROM (default 5: 20 %)
  --workers N          worker processes (default 1)
  --timeout S          give up on a phase after S seconds (default 900)
  --worker-script P    the worker to run (default dist/bin/worker.js), e.g. an older build to compare
  --only plain|throttled   run one phase only
`);
  process.exit(0);
}

function intFlag(name: string, raw: string | undefined, min: number): number {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) {
    process.stderr.write(`--${name} must be a whole number ≥ ${min}, got "${raw}"\n`);
    process.exit(2);
  }
  return n;
}

const READERS = intFlag('readers', flags.readers, 1);
const THROTTLE_EVERY = intFlag('throttle-every', flags['throttle-every'], 2);
const WORKERS = intFlag('workers', flags.workers, 1);
const TIMEOUT_MS = intFlag('timeout', flags.timeout, 1) * 1000;
const WORKER_SCRIPT = path.resolve(root, flags['worker-script']!);
if (flags.only !== undefined && !['plain', 'throttled'].includes(flags.only)) {
  process.stderr.write(`--only must be plain or throttled, got "${flags.only}"\n`);
  process.exit(2);
}

const fmt = (n: number, digits = 0) => n.toLocaleString('en', { minimumFractionDigits: digits, maximumFractionDigits: digits });
const log = (msg: string) => process.stdout.write(`· ${msg}\n`);

// ── cleanup, whatever happens ────────────────────────────────────────────────────────────────

const cleanups: (() => Promise<unknown>)[] = [];
let cleaning: Promise<void> | undefined;
function cleanUp(): Promise<void> {
  cleaning ??= (async () => {
    for (const run of cleanups.reverse()) await run().catch((err: Error) => process.stderr.write(`cleanup failed: ${err.message}\n`));
  })();
  return cleaning;
}
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (cleaning) return;
    void cleanUp().finally(() => process.exit(130));
  });
}

async function stopChild(child: ChildProcess, graceMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

// ── the world: one database, one queue prefix ───────────────────────────────────────────────

type World = { c: Container; env: Record<string, string> };

async function createWorld(): Promise<World> {
  const stamp = `${Date.now()}_${randomBytes(3).toString('hex')}`;
  const dbName = `broadside_bench_${stamp}`;
  const databaseUrl = `${SERVER_URL}/${dbName}`;
  const queuePrefix = `bs-bench-${stamp}`;
  const dataDir = await mkdtemp(path.join(tmpdir(), 'broadside-bench-'));
  cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
  await ensureDatabase(databaseUrl);
  cleanups.push(async () => {
    const admin = new pg.Client({ connectionString: withDefaultUser(`${SERVER_URL}/postgres`) });
    await admin.connect();
    try {
      await admin.query(`DROP DATABASE IF EXISTS ${quoteIdent(dbName)} WITH (FORCE)`);
    } finally {
      await admin.end();
    }
  });
  await migrate(databaseUrl);
  // The service's defaults for everything about sending; the workers get the same variables.
  const env: Record<string, string> = {
    DATABASE_URL: databaseUrl,
    REDIS_URL,
    QUEUE_PREFIX: queuePrefix,
    SECRET: 'bench-secret-that-is-long-enough-0123456789',
    API_TOKEN: 'bench-editor-token-0123456789',
    PUBLIC_URL: 'https://news.example.org',
    MAIL_FROM: 'The Relay <news@example.org>',
    POSTAL_ADDRESS: '1 Example Street, Springfield',
    DATA_DIR: dataDir,
    LOG_LEVEL: 'warn',
  };
  const parsed = parseConfig(env);
  const config: AppConfig = { ...parsed, apiToken: parsed.apiToken!, secret: parsed.secret! };
  const c = await createContainer(config, { log: pino({ level: 'silent' }) });
  cleanups.push(() => c.close());
  cleanups.push(async () => {
    const redis = new Redis(REDIS_URL);
    try {
      let cursor = '0';
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', `${queuePrefix}:*`, 'COUNT', 1000);
        if (keys.length) await redis.unlink(...keys);
        cursor = next;
      } while (cursor !== '0');
    } finally {
      redis.disconnect();
    }
  });
  await c.pool.query(
    `INSERT INTO subscribers (email, email_normalized, status, confirmed_at, consent_at, consent_source)
     SELECT 'reader' || g || '@example.com', 'reader' || g || '@example.com', 'active', now() - interval '1 day', now() - interval '1 day', 'import'
       FROM generate_series(1, $1::int) AS g`,
    [READERS],
  );
  await c.pool.query('VACUUM (ANALYZE) subscribers');
  log(`database ${dbName}: ${fmt(READERS)} active readers`);
  return { c, env };
}

// ── the relay: bench/sink.ts, throttling or not ──────────────────────────────────────────────

type Relay = { child: ChildProcess; port: number; counters(): { mesg: number; thr: number; sess: number } };

async function startRelay(throttleEvery: number): Promise<Relay> {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'bench/sink.ts'), '--throttle-every', String(throttleEvery)], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-4000)));
  const port = await new Promise<number>((resolve, reject) => {
    const check = () => {
      const m = /listening (\d+)/.exec(out);
      if (m) {
        child.stdout!.off('data', check);
        resolve(Number(m[1]));
      }
    };
    child.stdout!.on('data', check);
    child.once('exit', (code) => reject(new Error(`the relay exited (${code}) before listening`)));
  });
  return {
    child,
    port,
    counters() {
      const all = [...out.matchAll(/sess=(\d+) quit=\d+ mesg=(\d+) thr=(\d+)/g)];
      const last = all[all.length - 1];
      return { sess: Number(last?.[1] ?? 0), mesg: Number(last?.[2] ?? 0), thr: Number(last?.[3] ?? 0) };
    },
  };
}

// ── one phase: a send against one relay ─────────────────────────────────────────────────────

type Metrics = Record<string, number>;

/** The series of a worker's /metrics that this report reads, summed over the workers. */
async function scrape(ports: number[]): Promise<Metrics> {
  const out: Metrics = {};
  for (const port of ports) {
    const text = await fetch(`http://127.0.0.1:${port}/metrics`).then((r) => r.text()).catch(() => '');
    for (const line of text.split('\n')) {
      const m = /^(broadside_(?:smtp_\w+|delivery_retries_total|messages_total)(?:\{[^}]*\})?) (\S+)$/.exec(line);
      if (m) out[m[1]!] = (out[m[1]!] ?? 0) + Number(m[2]);
    }
  }
  return out;
}

type PhaseResult = {
  name: string;
  ms: number;
  rate: number;
  relay: { mesg: number; thr: number; sess: number };
  progress: Awaited<ReturnType<typeof progressOf>>;
  bounces: number;
  limitMin: number;
  metrics: Metrics;
};

async function runPhase(w: World, name: string, throttleEvery: number): Promise<PhaseResult> {
  const relay = await startRelay(throttleEvery);
  const metricsPorts: number[] = [];
  for (let i = 0; i < WORKERS; i++) metricsPorts.push(await freePort());
  const workers = metricsPorts.map((port) => spawn(process.execPath, [WORKER_SCRIPT], {
    cwd: root,
    env: { ...process.env, ...w.env, SMTP_URL: `smtp://127.0.0.1:${relay.port}`, METRICS_PORT: String(port) },
    stdio: ['ignore', 'ignore', 'inherit'],
  }));
  try {
    const started = Date.now();
    while ((await w.c.queues.deliver.getWorkersCount()) < WORKERS) {
      if (Date.now() - started > 60_000) throw new Error('the workers did not connect within 60 s');
      await sleep(100);
    }
    const source = await readFile(path.join(root, 'bench/issue-30kb.md'), 'utf8');
    const parsed = parseIssueFile(source);
    const issue = await createIssue(w.c.pool, w.c.renderer, { ...parsed, subject: `${parsed.subject} (${name})` });
    log(`${name}: sending to ${fmt(READERS)} readers through a relay that ${throttleEvery ? `answers 421 to every ${throttleEvery}th MAIL FROM` : 'accepts everything'}…`);
    const { send } = await triggerSend(w.c, issue.id, null);
    const deadline = Date.now() + TIMEOUT_MS;
    let limitMin = Infinity;
    let lastReport = Date.now();
    for (;;) {
      const s = (await findSend(w.c.pool, send.id))!;
      if (s.status === 'done') break;
      if (Date.now() > deadline) throw new Error(`${name}: the send was not done after ${TIMEOUT_MS / 1000} s: ${JSON.stringify(await progressOf(w.c.pool, send.id))}`);
      const m = await scrape(metricsPorts);
      const limit = m.broadside_smtp_concurrency_limit;
      if (limit !== undefined) limitMin = Math.min(limitMin, limit);
      if (Date.now() - lastReport > 10_000) {
        lastReport = Date.now();
        const p = await progressOf(w.c.pool, send.id);
        log(`${name}: ${fmt(p.submitted)} submitted after ${fmt((Date.now() - s.started_at!.getTime()) / 1000, 1)} s${limit !== undefined ? `, limit ${limit}` : ''}`);
      }
      await sleep(200);
    }
    const done = (await findSend(w.c.pool, send.id))!;
    const ms = done.finished_at!.getTime() - done.started_at!.getTime();
    const metrics = await scrape(metricsPorts);
    // A moment for the relay's counter line to arrive.
    await sleep(300);
    const { rows: [b] } = await w.c.pool.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM bounces b JOIN messages m ON m.id = b.message_id WHERE m.send_id = $1',
      [send.id],
    );
    const result: PhaseResult = {
      name,
      ms,
      rate: (done.total / ms) * 1000,
      relay: relay.counters(),
      progress: await progressOf(w.c.pool, send.id),
      bounces: b!.n,
      limitMin,
      metrics,
    };
    log(`${name}: ${fmt(result.rate, 1)} messages/s`);
    return result;
  } finally {
    await Promise.all(workers.map((child) => stopChild(child, 30_000)));
    await stopChild(relay.child, 2000);
  }
}

async function main(): Promise<void> {
  console.log(`Broadside throttling benchmark (node ${process.version}, ${fmt(READERS)} readers, ${WORKERS} worker process${WORKERS > 1 ? 'es' : ''}: ${path.relative(root, WORKER_SCRIPT)})\n`);
  const w = await createWorld();
  log(`RETRY_DELAY_SECONDS ${w.c.config.retryDelaySeconds}, DELIVERY_CONCURRENCY ${w.c.config.deliveryConcurrency}, SMTP_POOL_SIZE ${w.c.config.smtpPoolSize}`);
  const share = `${fmt(100 / THROTTLE_EVERY)} %`;
  const phases: PhaseResult[] = [];
  if (flags.only !== 'throttled') phases.push(await runPhase(w, 'no throttling', 0));
  if (flags.only !== 'plain') phases.push(await runPhase(w, `${share} throttled`, THROTTLE_EVERY));
  console.log('');
  for (const p of phases) {
    const retries = Object.entries(p.metrics).filter(([k, v]) => k.startsWith('broadside_delivery_retries_total') && v > 0).map(([k, v]) => `${/reason="(\w+)"/.exec(k)?.[1]} ${fmt(v)}`);
    console.log(`${p.name}:`);
    console.log(`  ${fmt(p.progress.submitted)} submitted in ${fmt(p.ms / 1000, 1)} s: ${fmt(p.rate, 1)} messages/s`);
    console.log(`  messages: failed ${p.progress.failed}, bounced ${p.progress.bounced}, cancelled ${p.progress.cancelled}; bounce records ${p.bounces}`);
    console.log(`  relay: ${fmt(p.relay.mesg)} messages taken, ${fmt(p.relay.thr)} transactions refused with 421, ${fmt(p.relay.sess)} connections`);
    if (retries.length) console.log(`  deliver jobs gone round again: ${retries.join(', ')}`);
    if (Number.isFinite(p.limitMin)) console.log(`  concurrency limit: lowest seen ${p.limitMin}, at the end ${p.metrics.broadside_smtp_concurrency_limit}`);
  }
  if (phases.length === 2) console.log(`\n${phases[1]!.name} / no throttling: ${fmt((phases[1]!.rate / phases[0]!.rate) * 100, 1)} % of the rate`);
}

try {
  await main();
} catch (err) {
  if (!cleaning) process.stderr.write(`\nbench:throttle failed: ${(err as Error).stack ?? err}\n`);
  process.exitCode = 1;
} finally {
  await cleanUp();
}
