// What the send benchmarks (bench/send.ts, bench/throttle.ts) build around the code they measure,
// from the tests' own support (test/support: the database, the readers, the Redis keys, the worker
// processes, the relay), and their clean-up, which runs whatever happens.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { parseConfig, type AppConfig } from '../src/config/index.js';
import { createContainer, type Container } from '../src/container.js';
import { createMigratedDatabase, databaseUrl, dropTestDatabase } from '../test/support/db.js';
import { freePort } from '../test/support/free-port.js';
import { seedActiveReaders } from '../test/support/readers.js';
import { deleteKeys, REDIS_URL } from '../test/support/redis-keys.js';
import { until } from '../test/support/wait.js';
import { startWorkerProcess, type WorkerProcess } from '../test/support/worker-process.js';

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export const fmt = (n: number, digits = 0) => n.toLocaleString('en', { minimumFractionDigits: digits, maximumFractionDigits: digits });
export const secs = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
export const log = (msg: string) => process.stdout.write(`· ${msg}\n`);

/** A flag's whole number, at least `min`; else the benchmark stops with a usage error. */
export function intFlag(name: string, raw: string | undefined, min: number): number {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) {
    process.stderr.write(`--${name} must be a whole number ≥ ${min}, got "${raw}"\n`);
    process.exit(2);
  }
  return n;
}

// ── clean-up, whatever happens ──────────────────────────────────────────────────────────────

const cleanups: { name: string; run: () => Promise<unknown> }[] = [];
let cleaning: Promise<void> | undefined;

/** Registers a clean-up step; they run in reverse order. */
export function onCleanup(name: string, run: () => Promise<unknown>): void {
  cleanups.push({ name, run });
}

/** Whether the clean-up has begun (an interruption: what main was using is going away). */
export const cleaningUp = (): boolean => cleaning !== undefined;

export function cleanUp(): Promise<void> {
  cleaning ??= (async () => {
    for (const { name, run } of cleanups.reverse()) {
      try {
        await run();
      } catch (err) {
        process.stderr.write(`cleanup (${name}) failed: ${(err as Error).message}\n`);
      }
    }
  })();
  return cleaning;
}

// `on`, not `once`: tsx and npm relay the signal again to this process (Ctrl-C reaches the whole
// process group too), and with no listener left tsx would exit at once, in the middle of the
// clean-up. Repeats are ignored while cleaning up.
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (cleaning) return;
    process.stderr.write(`\n${signal}: cleaning up…\n`);
    void cleanUp().finally(() => process.exit(130));
  });
}

/** Runs a benchmark's main, reports a failure (unless interrupted) and cleans up. */
export async function runBenchmark(name: string, main: () => Promise<void>): Promise<void> {
  try {
    await main();
  } catch (err) {
    if (!cleaning) process.stderr.write(`\n${name} failed: ${(err as Error).stack ?? err}\n`);
    process.exitCode = 1;
  } finally {
    await cleanUp();
  }
}

// ── the world: a database with its readers, a queue prefix, a container ────────────────────

export type BenchWorld = { c: Container; config: AppConfig; dbName: string };

/**
 * A fresh database (`broadside_bench_…`, migrated), `readers` active readers (every
 * `namedEvery`th one named, so some greetings are personal; 0: none), vacuumed as a list that has been
 * around would be, a queue prefix and a data directory of the run's own, and a container over
 * them, configured with the benchmark's `env` over fixed newsletter settings (what the workers
 * get too). All of it goes at the clean-up.
 */
export async function createBenchWorld(opts: { readers: number; namedEvery?: number; env?: Record<string, string> }): Promise<BenchWorld> {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'broadside-bench-'));
  onCleanup('data dir', () => rm(dataDir, { recursive: true, force: true }));

  let t = performance.now();
  const dbName = await createMigratedDatabase('broadside_bench');
  onCleanup('drop database', () => dropTestDatabase(dbName));
  log(`database ${dbName} created and migrated in ${secs(performance.now() - t)}`);

  const queuePrefix = `bs-bench-${Date.now()}_${randomBytes(3).toString('hex')}`;
  const parsed = parseConfig({
    DATABASE_URL: databaseUrl(dbName),
    REDIS_URL,
    QUEUE_PREFIX: queuePrefix,
    SECRET: 'bench-secret-that-is-long-enough-0123456789',
    API_TOKEN: 'bench-editor-token-0123456789',
    PUBLIC_URL: 'https://news.example.org',
    MAIL_FROM: 'The Relay <news@example.org>',
    POSTAL_ADDRESS: '1 Example Street, Springfield',
    DATA_DIR: dataDir,
    LOG_LEVEL: 'warn',
    ...opts.env,
  });
  const config: AppConfig = { ...parsed, apiToken: parsed.apiToken!, secret: parsed.secret! };
  const c = await createContainer(config, { log: pino({ level: 'silent' }) });
  onCleanup('container', () => c.close());
  onCleanup('redis keys', () => deleteKeys(queuePrefix));

  t = performance.now();
  await seedActiveReaders({ c }, opts.readers, { namedEvery: opts.namedEvery });
  const inserted = performance.now() - t;
  // A list that has been around has been vacuumed: the fan-out should not pay for hint bits.
  await c.pool.query('VACUUM (ANALYZE) subscribers');
  log(`${fmt(opts.readers)} active readers inserted in ${secs(inserted)} (+ VACUUM ANALYZE ${secs(performance.now() - t - inserted)})`);
  return { c, config, dbName };
}

// ── worker processes ────────────────────────────────────────────────────────────────────────

/**
 * `count` worker processes running the compiled `script` (what `npm run start:worker` runs,
 * built first), configured like the world plus `env`, each serving its metrics on a port of its
 * own (as on one machine in production) and logging warnings only. Resolves once every one has
 * its deliver worker connected to Redis; they are stopped (SIGTERM, then SIGKILL after 30 s) at
 * the clean-up.
 */
export async function startBenchWorkers(
  w: BenchWorld,
  count: number,
  opts: { script: string; nodeArgs?: string[]; env?: Record<string, string> },
): Promise<{ workers: WorkerProcess[]; metricsPorts: number[] }> {
  const metricsPorts: number[] = [];
  for (let i = 0; i < count; i++) metricsPorts.push(await freePort());
  const workers = metricsPorts.map((port, i) =>
    startWorkerProcess(w.config, {
      name: `worker ${i + 1}`,
      script: opts.script,
      nodeArgs: opts.nodeArgs,
      env: { LOG_LEVEL: 'warn', ...opts.env, METRICS_PORT: String(port) },
    }),
  );
  for (const p of workers) onCleanup(p.name, () => p.stop(30_000));
  await until(
    `${count} worker processes connected`,
    async () => {
      const dead = workers.find((p) => !p.running);
      if (dead) throw new Error(`${dead.name} exited at start: ${dead.output()}`);
      return (await w.c.queues.deliver.getWorkersCount()) >= count;
    },
    60_000,
  );
  return { workers, metricsPorts };
}

/** The first lines a worker printed (at LOG_LEVEL=warn, anything is worth a look), and how many. */
export function printedLines(workers: WorkerProcess[], first = 5): { lines: number; sample: string[] } {
  const all = workers.flatMap((p) =>
    p
      .output()
      .split('\n')
      .filter((l) => l.trim())
      .map((l) => `${p.name}: ${l.slice(0, 300)}`),
  );
  return { lines: all.length, sample: all.slice(0, first) };
}

// ── the discarding SMTP server ──────────────────────────────────────────────────────────────

export type Sink = {
  name: string;
  port: number;
  pid: number;
  /** The sink's last counter line: connections, messages taken, transactions refused with 421. */
  counters(): { sess: number; mesg: number; thr: number };
  stop(): Promise<void>;
};

const POSTFIX_SINK = '/usr/sbin/smtp-sink';
export const postfixSinkInstalled = (): boolean => existsSync(POSTFIX_SINK);

/**
 * A discarding SMTP server on loopback in a process of its own (its CPU is the sink's, not the
 * benchmark's): Postfix's smtp-sink, or bench/sink.ts (the tests' relay), which can throttle.
 */
export async function startSink(opts: { postfix?: boolean; throttleEvery?: number } = {}): Promise<Sink> {
  let child: ChildProcess;
  let name: string;
  let port: number;
  let out = '';
  let stderr = '';
  if (opts.postfix) {
    port = await freePort();
    // -c: counters on stdout ("sess=… quit=… mesg=…"); -u: required when run as root;
    // 1024: the listen backlog. Every command is answered 250/2xx at once; mail is discarded.
    const args = ['-c', ...(process.getuid?.() === 0 ? ['-u', 'nobody'] : []), `127.0.0.1:${port}`, '1024'];
    child = spawn(POSTFIX_SINK, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    name = `Postfix smtp-sink (${POSTFIX_SINK} ${args.join(' ')})`;
  } else {
    child = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'bench/sink.ts'), '--throttle-every', String(opts.throttleEvery ?? 0)], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    name = "Node sink (bench/sink.ts: the tests' relay, smtp-server)";
    port = 0;
  }
  child.stdout!.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-4000)));
  child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2000)));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let stopping = false;
  child.once('exit', (code, signal) => {
    if (!stopping && !cleaning) process.stderr.write(`the SMTP sink exited early (${code ?? signal}): ${stderr}\n`);
  });
  const stop = async () => {
    stopping = true;
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 2000);
    await exited;
    clearTimeout(timer);
  };
  onCleanup('sink', stop);
  if (opts.postfix) {
    await until(`the sink listening on 127.0.0.1:${port}`, () => canConnect(port), 5000);
  } else {
    port = await until(
      'the sink listening',
      () => {
        if (child.exitCode !== null) throw new Error(`the Node sink exited (${child.exitCode}) before listening: ${stderr}`);
        return Number(/listening (\d+)/.exec(out)?.[1] ?? 0);
      },
      30_000,
    );
  }
  const last = (key: string) => {
    const all = [...out.matchAll(new RegExp(`${key}=(\\d+)`, 'g'))];
    return Number(all[all.length - 1]?.[1] ?? 0);
  };
  return { name, port, pid: child.pid!, counters: () => ({ sess: last('sess'), mesg: last('mesg'), thr: last('thr') }), stop };
}

function canConnect(port: number): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });
}

// ── the physical yardstick: Postfix's own SMTP client ───────────────────────────────────────

const POSTFIX_SOURCE = '/usr/sbin/smtp-source';
export const postfixSourceInstalled = (): boolean => existsSync(POSTFIX_SOURCE);

export type SourceRun = { messages: number; ms: number; cpu: number; sinkCpu: number; received: number; command: string };

/** CPU seconds (user + system) a process has used so far, from /proc/<pid>/stat (0 once gone). */
export async function cpuOf(pid: number): Promise<number> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / 100; // USER_HZ is 100 on Linux
  } catch {
    return 0;
  }
}

/**
 * Postfix's `smtp-source` into `sink`: `messages` messages of `bytes` bytes over `sessions`
 * reused sessions (`-d`), timed from start to exit. Its CPU comes from the shell that waited for
 * it (cutime + cstime of /proc/<shell>/stat), so nothing is sampled while it runs.
 */
export async function runSmtpSource(sink: Sink, opts: { messages: number; sessions: number; bytes: number }): Promise<SourceRun> {
  // smtp-source writes From, To, Date, Message-Id and Subject (about 160 bytes) before the payload.
  const payload = Math.max(1, opts.bytes - 160);
  const args = [
    '-d',
    '-s',
    String(opts.sessions),
    '-l',
    String(payload),
    '-m',
    String(opts.messages),
    '-f',
    'news@example.org',
    '-t',
    'reader@example.com',
    `127.0.0.1:${sink.port}`,
  ];
  const command = `${POSTFIX_SOURCE} ${args.join(' ')}`;
  const sinkCpu0 = await cpuOf(sink.pid);
  const mesg0 = sink.counters().mesg;
  const t = performance.now();
  const child = spawn('/bin/sh', ['-c', `"$0" "$@" >/dev/null || exit $?; cat /proc/$$/stat`, POSTFIX_SOURCE, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-2000)));
  onCleanup('smtp-source', async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
  });
  const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
  const ms = performance.now() - t;
  if (code !== 0) throw new Error(`smtp-source failed (${code}): ${err}`);
  const f = out.slice(out.lastIndexOf(')') + 2).split(' ');
  // Fields 16 and 17 of stat: the CPU of waited-for children (cutime, cstime).
  const cpu = (Number(f[13]) + Number(f[14])) / 100;
  const sinkCpu = (await cpuOf(sink.pid)) - sinkCpu0;
  // A moment for the sink's counter line to arrive.
  await until('the sink counted smtp-source', () => sink.counters().mesg - mesg0 >= opts.messages, 5000).catch(() => undefined);
  return { messages: opts.messages, ms, cpu, sinkCpu, received: sink.counters().mesg - mesg0, command };
}
