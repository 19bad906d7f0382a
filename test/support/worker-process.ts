import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { configVariables, type AppConfig } from '../../src/config/index.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** Keep the tail of a chatty process's output, not all of it. */
const OUTPUT_LIMIT = 256 * 1024;

export type WorkerExit = { code: number | null; signal: NodeJS.Signals | null };

/**
 * The real worker entry point (`node --import tsx src/bin/worker.ts`, what `npm run
 * start:worker` runs) in a child process of its own, so a test can SIGKILL it mid-send the way
 * an operator's OOM killer or a pulled plug would.
 */
export type WorkerProcess = {
  readonly name: string;
  readonly pid: number;
  /**
   * Resolves once the process logged "worker started" (its BullMQ workers and supervisor run) or,
   * for the `start` and `api` entry points, once the API listens (then `port` is its HTTP port), or
   * once `startedWhen` appeared.
   */
  readonly started: Promise<void>;
  /** The HTTP port of a `start` or `api` process, once it listens; 0 for a worker. */
  readonly port: number;
  /** Resolves when the process has exited, however. */
  readonly exited: Promise<WorkerExit>;
  /** Whether the process is still running. */
  readonly running: boolean;
  /** Sends a signal (SIGKILL unless told); a no-op once the process has exited. */
  kill(signal?: NodeJS.Signals): void;
  /** SIGTERM, then SIGKILL if it is still there after `graceMs`; resolves once it has exited. */
  stop(graceMs: number): Promise<WorkerExit>;
  /** Everything it printed (stdout and stderr, the tail when long): for failure messages. */
  output(): string;
};

const live = new Set<WorkerProcess>();
let exitHookInstalled = false;

/**
 * The environment a worker process gets: the test context's configuration as the variables the
 * service reads, then `overrides`. Every service variable of the outer environment is dropped
 * first, so a developer's own SEND_RATE or SMTP_URL cannot leak into a test.
 */
export function workerEnv(config: AppConfig, overrides: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const name of configVariables) delete env[name];
  const fromConfig: Record<string, string | undefined> = {
    DATABASE_URL: config.databaseUrl,
    REDIS_URL: config.redisUrl,
    SMTP_URL: config.smtpUrl,
    QUEUE_PREFIX: config.queuePrefix,
    SECRET: config.secret,
    API_TOKEN: config.apiToken,
    PUBLIC_URL: config.publicUrl,
    MAIL_FROM: config.mailFrom,
    POSTAL_ADDRESS: config.postalAddress,
    DATA_DIR: config.dataDir,
    // Info, not the test's (usually silent) level: the output is what explains a failure.
    LOG_LEVEL: 'info',
    SENDING_TIMEOUT_SECONDS: String(config.sendingTimeoutSeconds),
    RETRY_DELAY_SECONDS: String(config.retryDelaySeconds),
    SEND_RATE: String(config.sendRate),
    DELIVERY_CONCURRENCY: String(config.deliveryConcurrency),
    DELIVERY_ATTEMPTS: String(config.deliveryAttempts),
    SEND_WINDOW: String(config.sendWindow),
    SMTP_POOL_SIZE: String(config.smtpPoolSize),
  };
  for (const [k, v] of Object.entries(fromConfig)) if (v !== undefined) env[k] = v;
  return { ...env, ...overrides };
}

/**
 * Starts a worker process configured like the test context (see workerEnv). `entry` runs another
 * entry point the same way: `start` is what `npm start` runs (src/bin/start.ts: the API and a
 * worker in one process), `api` the API alone; both on a free port of their choosing on
 * 127.0.0.1 unless `env` sets PORT. `startedWhen` is the log text that means it started (by
 * default "worker started", or for the API entry points the line saying it listens). `script`
 * runs a compiled entry point with plain node instead (e.g. `dist/bin/worker.js`, what the
 * benchmarks measure), with `nodeArgs` before it (e.g. `--cpu-prof`).
 */
export function startWorkerProcess(
  config: AppConfig,
  opts: { name?: string; env?: Record<string, string>; entry?: 'worker' | 'start' | 'api'; startedWhen?: string; script?: string; nodeArgs?: string[] } = {},
): WorkerProcess {
  const name = opts.name ?? `worker-${live.size + 1}`;
  const entry = opts.entry ?? 'worker';
  const env = entry === 'worker' ? opts.env : { PORT: '0', HOST: '127.0.0.1', ...opts.env };
  const args = opts.script ? [...(opts.nodeArgs ?? []), path.resolve(root, opts.script)] : [...(opts.nodeArgs ?? []), '--import', 'tsx', `src/bin/${entry}.ts`];
  const child: ChildProcess = spawn(process.execPath, args, {
    cwd: root,
    env: workerEnv(config, env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  let port = 0;
  let exit: WorkerExit | undefined;
  let onStarted: () => void = () => undefined;
  let onFailedToStart: (err: Error) => void = () => undefined;
  const started = new Promise<void>((resolve, reject) => {
    onStarted = resolve;
    onFailedToStart = reject;
  });
  // A test that never awaits `started` must not get an unhandled rejection from it.
  started.catch(() => undefined);

  const append = (chunk: Buffer) => {
    output += chunk.toString('utf8');
    if (output.length > OUTPUT_LIMIT) output = `…${output.slice(output.length - OUTPUT_LIMIT)}`;
    const listening = entry !== 'worker' && !port ? /"msg":"Server listening at http:\/\/127\.0\.0\.1:(\d+)"/.exec(output) : null;
    if (listening) port = Number(listening[1]);
    const isStarted = opts.startedWhen ? output.includes(opts.startedWhen) : entry === 'worker' ? output.includes('"msg":"worker started"') : port !== 0;
    if (isStarted) onStarted();
  };
  child.stdout!.on('data', append);
  child.stderr!.on('data', append);

  const exited = new Promise<WorkerExit>((resolve) => {
    child.once('exit', (code, signal) => {
      exit = { code, signal };
      live.delete(proc);
      onFailedToStart(new Error(`${name} exited (code ${code}, signal ${signal}) before it started:\n${output}`));
      resolve(exit);
    });
    child.once('error', (err) => {
      // spawn itself failed: there will be no 'exit'.
      exit = { code: null, signal: null };
      live.delete(proc);
      output += `\nspawn error: ${err.message}`;
      onFailedToStart(err);
      resolve(exit);
    });
  });

  const proc: WorkerProcess = {
    name,
    pid: child.pid ?? -1,
    started,
    exited,
    get port() {
      return port;
    },
    get running() {
      return exit === undefined;
    },
    kill(signal: NodeJS.Signals = 'SIGKILL') {
      if (exit === undefined) child.kill(signal);
    },
    async stop(graceMs) {
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), graceMs);
      try {
        return await exited;
      } finally {
        clearTimeout(timer);
      }
    },
    output: () => output,
  };
  live.add(proc);
  installExitHook();
  return proc;
}

/** SIGKILLs every worker process still running and waits until they are gone (for afterEach/afterAll). */
export async function killAllWorkerProcesses(): Promise<void> {
  const procs = [...live];
  for (const p of procs) p.kill('SIGKILL');
  await Promise.all(procs.map((p) => p.exited));
}

/** The outputs of the given processes, labelled, for a failure message. */
export function outputsOf(procs: WorkerProcess[]): string {
  return procs.map((p) => `----- ${p.name} (pid ${p.pid}) -----\n${p.output()}`).join('\n');
}

/** Last resort: if the test process itself goes away, take its children with it. */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const p of live) p.kill('SIGKILL');
  });
}
