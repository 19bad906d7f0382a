// `npm run bench:http`: the public pages from outside, as a popular issue meets them. The service
// runs as `npm start` runs it (API and worker in one process, built first, the capture SMTP taking
// the confirmation mails), on a database and a queue prefix of the run's own, behind nothing:
// the benchmark is its reverse proxy (TRUST_PROXY=127.0.0.1), so each sign-up carries a client
// address of its own in X-Forwarded-For and the per-IP limit still applies to every one of them.
// A minimal Fastify app in a process of its own, measured in the same run, is the yardstick:
// on a busy or small machine the ratios say more than the absolute figures.
//
// The confirmation mails go to the capture server `npm start` runs (it writes each to a file);
// `--relay sink` sends them to a discarding relay in a process of its own (bench/sink.ts), as a
// deployment sends to a relay elsewhere, so the service's CPU counts only its own part.
//
//   npm run bench:http [-- --seconds 10 --connections 50 --only web,feed --relay capture|sink]
//
// A second yardstick answers as many bytes as the web version from the same process: the most this
// machine and client make of an answer that size.
//
// Targets (for --only): yardstick, yardstick-page, signup-page, web, web-json, web-304, web-gzip, feed, archive, subscribe.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, openSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { parseIssueFile } from '../src/issues/issue-file.js';
import { createMigratedDatabase, databaseUrl, dropTestDatabase } from '../test/support/db.js';
import { freePort } from '../test/support/free-port.js';
import { deleteKeys, REDIS_URL } from '../test/support/redis-keys.js';
import { until } from '../test/support/wait.js';
import { fmt, intFlag, log, onCleanup, root, runBenchmark } from './world.js';

const { values: flags } = parseArgs({
  options: {
    seconds: { type: 'string', default: '10' },
    connections: { type: 'string', default: '50' },
    only: { type: 'string' },
    relay: { type: 'string', default: 'capture' },
    rate: { type: 'string' },
  },
});
const SECONDS = intFlag('seconds', flags.seconds, 1);
const CONNECTIONS = intFlag('connections', flags.connections, 1);
// --rate N: at most N requests a second from all connections together (autocannon's
// overallRate): latency at a given load (issue 16 asks for p99 < 50 ms at 2,000 sign-ups/s)
// rather than at as many requests as the service answers.
const RATE = flags.rate === undefined ? undefined : intFlag('rate', flags.rate, 1);
const only = flags.only?.split(',');
if (flags.relay !== 'capture' && flags.relay !== 'sink') {
  process.stderr.write(`--relay must be capture or sink, got "${flags.relay}"\n`);
  process.exit(2);
}

/** bench/sink.ts in a process of its own; resolves with its port once it listens. */
async function startSink(): Promise<number> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'bench/sink.ts', '--port', '0'], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
  onCleanup('sink', async () => {
    if (child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
  });
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const m = /listening (\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    child.once('exit', (code) => reject(new Error(`the sink exited with ${code}`)));
  });
}

const API_TOKEN = 'bench-editor-token-0123456789';

/** Starts a node process on a compiled entry point; resolves once `ready` answers 200. */
async function startProcess(name: string, args: string[], env: Record<string, string>, ready: string, logFile: string): Promise<ChildProcess> {
  // Straight into a file, as a deployment's log would go: through a pipe to this busy process
  // the service's logger would wait on a full pipe, which no deployment does.
  const out = openSync(logFile, 'a');
  const child = spawn(process.execPath, args, { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', out, out] });
  closeSync(out);
  onCleanup(name, async () => {
    if (child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
  });
  await until(
    `${name} to answer`,
    async () => {
      if (child.exitCode !== null) throw new Error(`${name} exited with ${child.exitCode}: see ${logFile}`);
      try {
        return (await fetch(ready)).status === 200;
      } catch {
        return false;
      }
    },
    60_000,
  );
  return child;
}

type Target = {
  key: string;
  label: string;
  /** The process that answers (whose CPU is counted). */
  pid?: number;
  /** Count the CPU until the process is idle again (the worker's part of a sign-up). */
  drain?: boolean;
  url: string;
  method?: 'GET' | 'POST';
  headers?: Record<string, string>;
  /** A request of its own each time (a sign-up: a new address from a new client). */
  setupRequest?: autocannon.Request['setupRequest'];
};

type Row = { label: string; rps: number; p50: number; p99: number; codes: string; errors: number; cpuUs: number | undefined };

/** CPU seconds (user + system) a process has used so far, from /proc/<pid>/stat (Linux); undefined elsewhere. */
async function cpuSeconds(pid: number | undefined): Promise<number | undefined> {
  if (pid === undefined) return undefined;
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name, which is in parentheses and may hold spaces.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return undefined;
  }
}

async function measure(t: Target, pid: number | undefined): Promise<Row> {
  const cpu0 = await cpuSeconds(pid);
  const result = await autocannon({
    url: t.url,
    connections: CONNECTIONS,
    duration: SECONDS,
    ...(RATE ? { overallRate: RATE } : {}),
    method: t.method ?? 'GET',
    headers: t.headers ?? {},
    ...(t.setupRequest ? { requests: [{ setupRequest: t.setupRequest }] } : {}),
  });
  const codes = Object.entries(result.statusCodeStats ?? {})
    .map(([code, { count }]) => `${code}×${fmt(Number(count))}`)
    .join(' ');
  if (t.drain) {
    // The worker in the same process still sends the confirmations queued: their cost is part
    // of a sign-up's. Counted until the process is idle again (under 5 % of a core for 0.5 s).
    const drainStart = performance.now();
    for (let last = await cpuSeconds(pid), i = 0; i < 120; i++) {
      await new Promise((resolve) => setTimeout(resolve, 500));
      const now = await cpuSeconds(pid);
      if (now === undefined || last === undefined || now - last < 0.025) break;
      last = now;
    }
    log(`  the worker was busy ${fmt((performance.now() - drainStart) / 1000, 1)} s after the last request`);
  }
  const cpu1 = await cpuSeconds(pid);
  // What the answering process spent on each request (and, for sign-ups, on the confirmation
  // mails its worker sent meanwhile): on a busy machine, steadier than the rate.
  const cpuUs = cpu0 !== undefined && cpu1 !== undefined && result.requests.total > 0 ? ((cpu1 - cpu0) / result.requests.total) * 1e6 : undefined;
  return {
    label: t.label,
    rps: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    codes,
    errors: result.errors + result.timeouts,
    cpuUs,
  };
}

await runBenchmark('bench:http', async () => {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'broadside-bench-http-'));
  onCleanup('data dir', () => rm(dataDir, { recursive: true, force: true }));
  const dbName = await createMigratedDatabase('broadside_bench_http');
  onCleanup('drop database', () => dropTestDatabase(dbName));
  const queuePrefix = `bs-bench-http-${Date.now()}_${randomBytes(3).toString('hex')}`;
  onCleanup('redis keys', () => deleteKeys(queuePrefix));
  const [port, capturePort, helloPort] = [await freePort(), await freePort(), await freePort()];
  log(
    `database ${dbName}, queue prefix ${queuePrefix}, ${cpus().length} CPUs, ${CONNECTIONS} connections${RATE ? ` at ${RATE} requests/s` : ''}, ${SECONDS} s a target, mail to the ${flags.relay}`,
  );

  const base = `http://127.0.0.1:${port}`;
  // BENCH_CPU_PROF=<dir>: the service writes a CPU profile there when it stops (node --cpu-prof).
  const profile = process.env.BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${path.resolve(process.env.BENCH_CPU_PROF)}`] : [];
  const service = await startProcess(
    'service',
    [...profile, process.env.BENCH_ENTRY ?? 'dist/bin/start.js'],
    {
      DATABASE_URL: databaseUrl(dbName),
      REDIS_URL,
      QUEUE_PREFIX: queuePrefix,
      SECRET: 'bench-secret-that-is-long-enough-0123456789',
      API_TOKEN,
      PUBLIC_URL: 'https://news.example.org',
      MAIL_FROM: 'The Relay <news@example.org>',
      POSTAL_ADDRESS: '1 Example Street, Springfield',
      NEWSLETTER_NAME: 'The Relay',
      DATA_DIR: dataDir,
      HOST: '127.0.0.1',
      PORT: String(port),
      CAPTURE_SMTP_PORT: String(capturePort),
      METRICS_PORT: '0',
      // The benchmark stands where nginx would: trusted, so it names each client (X-Forwarded-For)
      // and its 50 connections are not capped as one peer's.
      TRUST_PROXY: '127.0.0.1',
      // As `npm start` logs by default, to a file as a deployment would.
      LOG_LEVEL: 'info',
      ...(flags.relay === 'sink' ? { SMTP_URL: `smtp://127.0.0.1:${await startSink()}` } : {}),
    },
    `${base}/`,
    path.join(dataDir, 'service.log'),
  );
  const yardstick = await startProcess(
    'yardstick',
    [
      '--input-type=module',
      '-e',
      `import Fastify from 'fastify';
       const app = Fastify();
       app.get('/', async () => ({ hello: 'world' }));
       // An answer of N bytes, made once: what serving a page of that size costs Fastify and the client.
       const sized = new Map();
       app.get('/bytes/:n', async (request, reply) => {
         const n = Math.min(Number(request.params.n) || 0, 1 << 20);
         if (!sized.has(n)) sized.set(n, Buffer.alloc(n, 'a'));
         return reply.type('text/html; charset=utf-8').send(sized.get(n));
       });
       await app.listen({ host: '127.0.0.1', port: ${helloPort} });`,
    ],
    {},
    `http://127.0.0.1:${helloPort}/`,
    path.join(dataDir, 'yardstick.log'),
  );

  // The seed issue: sample/issue.md (14.4 KB of Markdown), published as an editor would.
  const { id: _id, ...input } = parseIssueFile(await readFile(path.join(root, 'sample/issue.md'), 'utf8'));
  const api = async (method: string, route: string, body?: unknown) => {
    const res = await fetch(`${base}${route}`, {
      method,
      headers: { authorization: `Bearer ${API_TOKEN}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    if (!res.ok) throw new Error(`${method} ${route}: ${res.status} ${await res.text()}`);
    return (await res.json()) as { id: number; slug: string; htmlBytes: number };
  };
  const issue = await api('POST', '/api/issues', input);
  await api('POST', `/api/issues/${issue.id}/publish`);
  // fetch asks for gzip by default: the identity copy's size and tag (what autocannon gets).
  const web = await fetch(`${base}/issues/${issue.slug}`, { headers: { 'accept-encoding': 'identity' } });
  const webBytes = (await web.arrayBuffer()).byteLength;
  const etag = web.headers.get('etag');
  const zipped = await fetch(`${base}/issues/${issue.slug}`, { headers: { 'accept-encoding': 'gzip' } });
  const zippedBytes = zipped.headers.get('content-encoding') === 'gzip' ? Number(zipped.headers.get('content-length')) : undefined;
  await zipped.arrayBuffer();
  log(
    `seed issue "${issue.slug}": ${fmt(input.markdown.length / 1024, 1)} KB Markdown, web version ${fmt(webBytes / 1024, 1)} KB${zippedBytes ? ` (${fmt(zippedBytes / 1024, 1)} KB gzipped)` : ''}, ETag ${etag ?? 'none'}`,
  );

  let n = 0;
  const run = randomBytes(3).toString('hex');
  const all: Target[] = [
    { key: 'yardstick', label: 'yardstick: Fastify hello-world', pid: yardstick.pid, url: `http://127.0.0.1:${helloPort}/` },
    {
      key: 'yardstick-page',
      label: `yardstick: the same, ${fmt(webBytes / 1024, 1)} KB answer`,
      pid: yardstick.pid,
      url: `http://127.0.0.1:${helloPort}/bytes/${webBytes}`,
    },
    { key: 'signup-page', label: 'GET / (sign-up page)', url: `${base}/` },
    { key: 'web', label: 'GET /issues/<slug> (web version)', url: `${base}/issues/${issue.slug}` },
    { key: 'web-json', label: 'same, JSON', url: `${base}/issues/${issue.slug}`, headers: { accept: 'application/json' } },
    { key: 'web-gzip', label: 'same, Accept-Encoding: gzip', url: `${base}/issues/${issue.slug}`, headers: { 'accept-encoding': 'gzip' } },
    { key: 'feed', label: 'GET /feed.xml', url: `${base}/feed.xml` },
    { key: 'archive', label: 'GET /issues (archive list)', url: `${base}/issues` },
    {
      key: 'subscribe',
      label: 'POST /subscribe (form, new address each)',
      url: `${base}/subscribe`,
      method: 'POST',
      drain: true,
      setupRequest: (req) => {
        const i = n++;
        return {
          ...req,
          headers: {
            'content-type': 'application/x-www-form-urlencoded',
            // A client of its own: 10.x.y.z from the counter (16 million before a repeat).
            'x-forwarded-for': `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`,
          },
          body: `email=reader-${run}-${i}%40example.org&name=Reader+${i}`,
        };
      },
    },
  ];
  if (etag) all.splice(4, 0, { key: 'web-304', label: 'same, If-None-Match (304)', url: `${base}/issues/${issue.slug}`, headers: { 'if-none-match': etag } });
  const targets = all.filter((t) => !only || only.includes(t.key));

  const rows: Row[] = [];
  for (const t of targets) {
    log(`${t.label}…`);
    rows.push(await measure(t, t.pid ?? service.pid));
  }
  const yard = rows.find((r) => r.label.startsWith('yardstick'));
  const pad = (s: string, w: number) => s.padEnd(w);
  const lpad = (s: string, w: number) => s.padStart(w);
  process.stdout.write(
    `\n${pad('target', 44)}${lpad('req/s', 9)}${lpad('p50 ms', 8)}${lpad('p99 ms', 8)}${lpad('of yardstick', 14)}${lpad('CPU µs/req', 12)}  statuses\n`,
  );
  for (const r of rows) {
    const share = yard ? `${fmt((r.rps / yard.rps) * 100)} %` : '';
    process.stdout.write(
      `${pad(r.label, 44)}${lpad(fmt(r.rps), 9)}${lpad(fmt(r.p50), 8)}${lpad(fmt(r.p99), 8)}${lpad(share, 14)}${lpad(r.cpuUs === undefined ? '' : fmt(r.cpuUs), 12)}  ${r.codes}${r.errors ? ` errors×${r.errors}` : ''}\n`,
    );
  }
});
