// `npm run bench:throttle`: the same send against a relay that accepts everything and against one
// that answers 421 to a share of the transactions, in one run, so the two rates are comparable.
//
//   npm run bench:throttle -- [--readers 10000] [--throttle-every 5] [--workers 1] [--timeout 900]
//
// Needs Postgres (TEST_DATABASE_SERVER_URL, as the tests, default postgres://127.0.0.1:5432) and
// Redis (REDIS_URL). The script builds dist/ first (npm run build).
//
// One run, in a fresh database and queue prefix built with the tests' support (bench/world.ts),
// with the service's defaults (RETRY_DELAY_SECONDS, DELIVERY_CONCURRENCY, SMTP_POOL_SIZE…):
//  1. N active readers and, per phase, one issue made from bench/issue-30kb.md;
//  2. per phase, a relay (bench/sink.ts: the tests' relay, smtp-server) that discards what it
//     gets: first one that accepts every transaction, then one that answers `421` to every Nth
//     MAIL FROM and closes the connection (N = 5: 20 % of transactions);
//  3. W worker processes (`node dist/bin/worker.js`) against that relay, the send triggered, and
//     timed from its start to `done`;
//  4. a report: messages/s of each phase and their ratio, what the relay refused, how the
//     message rows ended, and what the workers' /metrics say about the adaptive limit.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { createIssue } from '../src/issues/authoring.js';
import { parseIssueFile } from '../src/issues/issue-file.js';
import { triggerSend } from '../src/sending/control.js';
import { findSend, progressOf } from '../src/sending/queries.js';
import { createBenchWorld, fmt, intFlag, log, printedLines, root, runBenchmark, startBenchWorkers, startSink, type BenchWorld } from './world.js';

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

const READERS = intFlag('readers', flags.readers, 1);
const THROTTLE_EVERY = intFlag('throttle-every', flags['throttle-every'], 2);
const WORKERS = intFlag('workers', flags.workers, 1);
const TIMEOUT_MS = intFlag('timeout', flags.timeout, 1) * 1000;
const WORKER_SCRIPT = path.resolve(root, flags['worker-script']!);
if (flags.only !== undefined && !['plain', 'throttled'].includes(flags.only)) {
  process.stderr.write(`--only must be plain or throttled, got "${flags.only}"\n`);
  process.exit(2);
}

// ── one phase: a send against one relay ─────────────────────────────────────────────────────

type Metrics = Record<string, number>;

/** The series of a worker's /metrics that this report reads, summed over the workers. */
async function scrape(ports: number[]): Promise<Metrics> {
  const out: Metrics = {};
  for (const port of ports) {
    const text = await fetch(`http://127.0.0.1:${port}/metrics`)
      .then((r) => r.text())
      .catch(() => '');
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

async function runPhase(w: BenchWorld, name: string, throttleEvery: number): Promise<PhaseResult> {
  const relay = await startSink({ throttleEvery });
  const { workers, metricsPorts } = await startBenchWorkers(w, WORKERS, { script: WORKER_SCRIPT, env: { SMTP_URL: `smtp://127.0.0.1:${relay.port}` } });
  try {
    const source = await readFile(path.join(root, 'bench/issue-30kb.md'), 'utf8');
    const parsed = parseIssueFile(source);
    const issue = await createIssue(w.c.pool, w.c.renderer, { ...parsed, subject: `${parsed.subject} (${name})` });
    log(
      `${name}: sending to ${fmt(READERS)} readers through a relay that ${throttleEvery ? `answers 421 to every ${throttleEvery}th MAIL FROM` : 'accepts everything'}…`,
    );
    const { send } = await triggerSend(w.c, issue.id);
    const deadline = Date.now() + TIMEOUT_MS;
    let limitMin = Infinity;
    let lastReport = Date.now();
    for (;;) {
      const s = (await findSend(w.c.pool, send.id))!;
      if (s.status === 'done') break;
      if (Date.now() > deadline)
        throw new Error(`${name}: the send was not done after ${TIMEOUT_MS / 1000} s: ${JSON.stringify(await progressOf(w.c.pool, send.id))}`);
      const m = await scrape(metricsPorts);
      const limit = m.broadside_smtp_concurrency_limit;
      if (limit !== undefined) limitMin = Math.min(limitMin, limit);
      if (Date.now() - lastReport > 10_000) {
        lastReport = Date.now();
        const p = await progressOf(w.c.pool, send.id);
        log(
          `${name}: ${fmt(p.submitted)} submitted after ${fmt((Date.now() - s.started_at!.getTime()) / 1000, 1)} s${limit !== undefined ? `, limit ${limit}` : ''}`,
        );
      }
      await sleep(200);
    }
    const done = (await findSend(w.c.pool, send.id))!;
    const ms = done.finished_at!.getTime() - done.started_at!.getTime();
    const metrics = await scrape(metricsPorts);
    // A moment for the relay's counter line to arrive.
    await sleep(300);
    const {
      rows: [b],
    } = await w.c.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM bounces b JOIN messages m ON m.id = b.message_id WHERE m.send_id = $1', [send.id]);
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
    await Promise.all(workers.map((p) => p.stop(30_000)));
    await relay.stop();
    const printed = printedLines(workers);
    if (printed.lines > 0) log(`${name}: the workers printed ${printed.lines} line(s) (LOG_LEVEL=warn); the first:\n    ${printed.sample.join('\n    ')}`);
  }
}

async function main(): Promise<void> {
  console.log(
    `Broadside throttling benchmark (node ${process.version}, ${fmt(READERS)} readers, ${WORKERS} worker process${WORKERS > 1 ? 'es' : ''}: ${path.relative(root, WORKER_SCRIPT)})\n`,
  );
  // The service's defaults for everything about sending; the workers get the same settings.
  const w = await createBenchWorld({ readers: READERS, namedEvery: 0 });
  log(`RETRY_DELAY_SECONDS ${w.c.config.retryDelaySeconds}, DELIVERY_CONCURRENCY ${w.c.config.deliveryConcurrency}, SMTP_POOL_SIZE ${w.c.config.smtpPoolSize}`);
  const share = `${fmt(100 / THROTTLE_EVERY)} %`;
  const phases: PhaseResult[] = [];
  if (flags.only !== 'throttled') phases.push(await runPhase(w, 'no throttling', 0));
  if (flags.only !== 'plain') phases.push(await runPhase(w, `${share} throttled`, THROTTLE_EVERY));
  console.log('');
  for (const p of phases) {
    const retries = Object.entries(p.metrics)
      .filter(([k, v]) => k.startsWith('broadside_delivery_retries_total') && v > 0)
      .map(([k, v]) => `${/reason="(\w+)"/.exec(k)?.[1]} ${fmt(v)}`);
    console.log(`${p.name}:`);
    console.log(`  ${fmt(p.progress.submitted)} submitted in ${fmt(p.ms / 1000, 1)} s: ${fmt(p.rate, 1)} messages/s`);
    console.log(`  messages: failed ${p.progress.failed}, bounced ${p.progress.bounced}, cancelled ${p.progress.cancelled}; bounce records ${p.bounces}`);
    console.log(`  relay: ${fmt(p.relay.mesg)} messages taken, ${fmt(p.relay.thr)} transactions refused with 421, ${fmt(p.relay.sess)} connections`);
    if (retries.length) console.log(`  deliver jobs gone round again: ${retries.join(', ')}`);
    if (Number.isFinite(p.limitMin)) console.log(`  concurrency limit: lowest seen ${p.limitMin}, at the end ${p.metrics.broadside_smtp_concurrency_limit}`);
  }
  if (phases.length === 2) console.log(`\n${phases[1]!.name} / no throttling: ${fmt((phases[1]!.rate / phases[0]!.rate) * 100, 1)} % of the rate`);
}

await runBenchmark('bench:throttle', main);
