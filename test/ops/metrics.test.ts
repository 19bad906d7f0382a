import { createServer as createTcpServer, connect, type AddressInfo, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { pino } from 'pino';
import { startMetricsServer, startWorkerMetrics } from '../../src/metrics/metrics-server.js';
import { createTestContext, linkIn, pathOf, REDIS_URL, useTestContext, type TestContext } from '../support/context.js';
import { editor, until, workersIdle } from '../support/editor.js';
import { addActiveReaders } from '../support/readers.js';
import { killAllWorkerProcesses, startWorkerProcess } from '../support/worker-process.js';

// ---------------------------------------------------------------------------------------------
// A small reader of the Prometheus text exposition format (version 0.0.4), enough to check what
// a scrape says: samples with their labels, and the HELP and TYPE of each metric family.

type Sample = { name: string; labels: Record<string, string>; value: number };
type Scrape = { text: string; samples: Sample[]; help: Map<string, string>; types: Map<string, string> };

function parseLabels(body: string): Record<string, string> {
  const labels: Record<string, string> = {};
  let i = 0;
  while (i < body.length) {
    const m = /^\s*([a-zA-Z_][a-zA-Z0-9_]*)="/.exec(body.slice(i));
    if (!m) throw new Error(`bad label set: {${body}}`);
    i += m[0].length;
    let value = '';
    for (;;) {
      const ch = body[i++];
      if (ch === undefined) throw new Error(`unterminated label value: {${body}}`);
      if (ch === '"') break;
      if (ch === '\\') {
        const next = body[i++];
        value += next === 'n' ? '\n' : next;
      } else {
        value += ch;
      }
    }
    labels[m[1]!] = value;
    const rest = /^\s*,?/.exec(body.slice(i))!;
    i += rest[0].length;
  }
  return labels;
}

function parseValue(raw: string): number {
  // Go's ParseFloat, which Prometheus uses, takes NaN and Inf in any case (prom-client writes "Nan").
  if (/^nan$/i.test(raw)) return NaN;
  if (/^\+?inf$/i.test(raw)) return Infinity;
  if (/^-inf$/i.test(raw)) return -Infinity;
  const n = Number(raw);
  if (Number.isNaN(n)) throw new Error(`bad sample value: ${raw}`);
  return n;
}

function parseExposition(text: string): Scrape {
  const samples: Sample[] = [];
  const help = new Map<string, string>();
  const types = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    const meta = /^# (HELP|TYPE) (\S+) (.*)$/.exec(line);
    if (meta) {
      (meta[1] === 'HELP' ? help : types).set(meta[2]!, meta[3]!);
      continue;
    }
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+-?\d+)?$/.exec(line);
    if (!m) throw new Error(`not an exposition line: ${line}`);
    samples.push({ name: m[1]!, labels: m[2] ? parseLabels(m[2]) : {}, value: parseValue(m[3]!) });
  }
  return { text, samples, help, types };
}

/** The sum of the samples named `name` whose labels include `labels` (0 when there are none). */
function sum(s: Scrape, name: string, labels: Record<string, string> = {}): number {
  return s.samples.filter((x) => x.name === name && Object.entries(labels).every(([k, v]) => x.labels[k] === v)).reduce((acc, x) => acc + x.value, 0);
}

function matching(s: Scrape, name: string, labels: Record<string, string> = {}): Sample[] {
  return s.samples.filter((x) => x.name === name && Object.entries(labels).every(([k, v]) => x.labels[k] === v));
}

async function scrapeApp(t: TestContext): Promise<Scrape> {
  // No Authorization header: /metrics is open, like most exporters.
  const res = await t.app.inject({ method: 'GET', url: '/metrics' });
  expect([res.statusCode, res.headers['content-type']]).toEqual([200, 'text/plain; version=0.0.4; charset=utf-8']);
  return parseExposition(res.body);
}

/** Every histogram series is cumulative and ends in +Inf equal to its _count. */
function expectWellFormedHistogram(s: Scrape, name: string, labels: Record<string, string>): void {
  const buckets = matching(s, `${name}_bucket`, labels).sort((a, b) => parseValue(a.labels.le!) - parseValue(b.labels.le!));
  expect(buckets.length).toBeGreaterThan(1);
  for (let i = 1; i < buckets.length; i++) expect(buckets[i]!.value).toBeGreaterThanOrEqual(buckets[i - 1]!.value);
  expect(buckets.at(-1)!.labels.le).toBe('+Inf');
  expect(buckets.at(-1)!.value).toBe(sum(s, `${name}_count`, labels));
}

const BROADSIDE_METRICS = [
  'broadside_http_requests_total',
  'broadside_http_request_duration_seconds',
  'broadside_messages_total',
  'broadside_delivery_retries_total',
  'broadside_smtp_submission_duration_seconds',
  'broadside_smtp_refusals_total',
  'broadside_smtp_concurrency_limit',
  'broadside_signups_total',
  'broadside_signups_ignored_total',
  'broadside_confirmations_total',
  'broadside_bounce_listener_refusals_total',
  'broadside_inbound_reports_pruned_total',
  'broadside_queue_jobs',
  'broadside_queue_depth_available',
];

const signUp = (t: TestContext, body: Record<string, string>) =>
  t.app.inject({ method: 'POST', url: '/subscribe', headers: { accept: 'application/json' }, payload: body });

describe('GET /metrics on the API', () => {
  const t = useTestContext({ worker: true });
  const e = editor(t);

  it('counts requests by route pattern, method and status; a URL with no route is "unmatched"', async () => {
    const issue = await e.createIssue('Metrics issue');
    const before = await scrapeApp(t);
    const labels = { route: '/api/issues/:id', method: 'GET' };
    expect((await e.api('GET', `/api/issues/${issue.id}`)).statusCode).toBe(200);
    expect((await e.api('GET', `/api/issues/${issue.id}`)).statusCode).toBe(200);
    expect((await e.api('GET', '/api/issues/987654')).statusCode).toBe(404);
    expect((await t.app.inject({ method: 'GET', url: '/no-such-page/secret-looking-segment-4242' })).statusCode).toBe(404);
    const after = await scrapeApp(t);

    const delta = (name: string, l: Record<string, string>) => sum(after, name, l) - sum(before, name, l);
    expect(delta('broadside_http_requests_total', { ...labels, status_code: '200' })).toBe(2);
    expect(delta('broadside_http_requests_total', { ...labels, status_code: '404' })).toBe(1);
    expect(delta('broadside_http_request_duration_seconds_count', labels)).toBe(3);
    expect(delta('broadside_http_requests_total', { route: 'unmatched', method: 'GET', status_code: '404' })).toBe(1);
    // The scrape before this one is counted too, under its own route.
    expect(delta('broadside_http_requests_total', { route: '/metrics', method: 'GET', status_code: '200' })).toBe(1);
    expectWellFormedHistogram(after, 'broadside_http_request_duration_seconds', labels);

    // Only route patterns, never the URL as requested.
    expect(after.text).not.toContain('secret-looking-segment-4242');
    expect(after.text).not.toContain(`/api/issues/${issue.id}"`);
    for (const x of matching(after, 'broadside_http_requests_total')) expect(x.labels.route).toMatch(/^(\/|unmatched$)/);
  });

  it('answers without a token in the text format, with help and type for every broadside_ metric and the process defaults', async () => {
    const s = await scrapeApp(t);
    for (const name of BROADSIDE_METRICS) {
      expect([name, (s.help.get(name)?.length ?? 0) > 20, s.types.has(name)]).toEqual([name, true, true]);
    }
    // Node's default metrics, from the same scrape.
    expect(s.types.get('process_cpu_user_seconds_total')).toBe('counter');
    expect(sum(s, 'nodejs_heap_size_used_bytes')).toBeGreaterThan(0);
    expect(s.types.get('nodejs_eventloop_lag_seconds')).toBe('gauge');
    // Every counter series exists from the start, at 0 where nothing happened yet.
    for (const outcome of ['submitted', 'bounced', 'failed', 'cancelled']) {
      expect(matching(s, 'broadside_messages_total', { outcome })).toHaveLength(1);
    }
  });

  it('counts real sign-ups and confirmations only, and no reader token ever appears', async () => {
    const before = await scrapeApp(t);
    const email = 'metrics.reader@example.com';
    expect((await signUp(t, { email, name: 'Metrics Reader' })).statusCode).toBe(202);
    const confirmation = await t.smtp.waitFor((m) => m.recipients.includes(email));
    const confirmUrl = linkIn(confirmation.parsed.text ?? '', '/confirm/');
    const token = confirmUrl.split('/').pop()!;
    expect(token.length).toBeGreaterThan(20);

    // A repeat within the resend window: answered the same, changes nothing.
    expect((await signUp(t, { email })).statusCode).toBe(202);
    // A bot filling the honeypot.
    expect((await signUp(t, { email: 'bot@example.com', website: 'http://spam.example' })).statusCode).toBe(202);
    // The GET shows a button and confirms nobody; the POST confirms; a second POST changes nothing.
    expect((await t.app.inject({ method: 'GET', url: pathOf(confirmUrl) })).statusCode).toBe(200);
    const confirm = () => t.app.inject({ method: 'POST', url: pathOf(confirmUrl), headers: { accept: 'application/json' } });
    expect((await confirm()).statusCode).toBe(200);
    expect((await confirm()).statusCode).toBe(200);
    // Signing up again once active: nothing changes.
    expect((await signUp(t, { email })).statusCode).toBe(202);
    // A forged token: refused, under the same route pattern.
    const forged = 'forged-token-that-must-not-leak-0123456789';
    expect((await t.app.inject({ method: 'GET', url: `/manage/${forged}` })).statusCode).toBeGreaterThanOrEqual(400);
    // A URL the router cannot even decode (a broken %-escape): Fastify answers it outside the
    // route hooks, so it is not counted; its URL must not leak either.
    const undecodable = `/confirm/%zz-${forged}-undecodable`;
    expect((await t.app.inject({ method: 'POST', url: undecodable })).statusCode).toBe(400);

    const after = await scrapeApp(t);
    const delta = (name: string, l: Record<string, string> = {}) => sum(after, name, l) - sum(before, name, l);
    expect(delta('broadside_signups_total')).toBe(1);
    expect(delta('broadside_signups_ignored_total', { reason: 'unchanged' })).toBe(2);
    expect(delta('broadside_signups_ignored_total', { reason: 'honeypot' })).toBe(1);
    expect(delta('broadside_confirmations_total')).toBe(1);
    expect(delta('broadside_http_requests_total', { route: '/confirm/:token', method: 'POST', status_code: '200' })).toBe(2);
    expect(delta('broadside_http_requests_total', { route: '/confirm/:token', method: 'GET', status_code: '200' })).toBe(1);
    expect(delta('broadside_http_requests_total', { route: '/subscribe', method: 'POST', status_code: '202' })).toBe(4);

    expect(after.text).not.toContain(token);
    expect(after.text).not.toContain(forged);
    expect(after.text).not.toContain(email);
    // The welcome email is the last thing the worker does for this reader (before the leak check).
    await t.smtp.waitFor((m) => m.recipients.includes(email) && m.parsed.subject === 'Welcome to The Test Letter');
  });

  it('reports queue depth per queue and state, read from Redis at scrape time', async () => {
    const empty = await scrapeApp(t);
    expect(sum(empty, 'broadside_queue_depth_available')).toBe(1);
    for (const queue of ['reader-mail', 'send-fanout', 'deliver']) {
      for (const state of ['waiting', 'prioritized', 'active', 'delayed', 'failed']) {
        expect(matching(empty, 'broadside_queue_jobs', { queue, state })).toHaveLength(1);
      }
    }
    const delayedBefore = sum(empty, 'broadside_queue_jobs', { queue: 'reader-mail', state: 'delayed' });

    // Delayed by an hour: the running worker leaves them where they are.
    const jobs = await Promise.all(
      [1, 2, 3].map((i) => t.c.queues.readerMail.add('welcome', { kind: 'welcome', subscriberId: 900000 + i }, { delay: 3600_000 })),
    );
    try {
      const s = await scrapeApp(t);
      expect(sum(s, 'broadside_queue_jobs', { queue: 'reader-mail', state: 'delayed' })).toBe(delayedBefore + 3);
      expect(sum(s, 'broadside_queue_jobs', { queue: 'deliver', state: 'delayed' })).toBe(
        sum(empty, 'broadside_queue_jobs', { queue: 'deliver', state: 'delayed' }),
      );
    } finally {
      await Promise.all(jobs.map((j) => j.remove()));
    }
    const gone = await scrapeApp(t);
    expect(sum(gone, 'broadside_queue_jobs', { queue: 'reader-mail', state: 'delayed' })).toBe(delayedBefore);
  });

  it('counts a send through the worker: submitted and bounced messages, and the SMTP submission time', async () => {
    const readers = await addActiveReaders(t, ['m1@example.com', 'm2@example.com', 'm3@example.com', 'gone@example.com']);
    t.smtp.rejectRecipient = (address) => (address === 'gone@example.com' ? { code: 550, message: '5.1.1 no such user' } : undefined);
    try {
      const before = await scrapeApp(t);
      const issue = await e.createIssue('Counted issue');
      await e.trigger(issue.id);
      const done = await e.waitForStatus(issue.id, 'done');
      // Everyone active is in the audience: these readers, and any confirmed by an earlier test.
      expect(done.total).toBeGreaterThanOrEqual(readers.length);
      expect(done).toMatchObject({ bounced: 1, failed: 0, submitted: done.total - 1 });

      const after = await scrapeApp(t);
      const delta = (name: string, l: Record<string, string> = {}) => sum(after, name, l) - sum(before, name, l);
      expect(delta('broadside_messages_total', { outcome: 'submitted' })).toBe(done.submitted);
      expect(delta('broadside_messages_total', { outcome: 'bounced' })).toBe(1);
      expect(delta('broadside_bounces_total', { type: 'hard', source: 'smtp', matched: 'true' })).toBe(1);
      expect(delta('broadside_messages_total', { outcome: 'failed' })).toBe(0);
      expect(delta('broadside_smtp_submission_duration_seconds_count', { result: 'accepted' })).toBe(done.submitted);
      expect(delta('broadside_smtp_submission_duration_seconds_count', { result: 'error' })).toBe(1);
      expect(delta('broadside_smtp_submission_duration_seconds_sum', { result: 'accepted' })).toBeGreaterThan(0);
      expectWellFormedHistogram(after, 'broadside_smtp_submission_duration_seconds', { result: 'accepted' });
      // The buckets run from 5 ms to 30 s.
      const les = matching(after, 'broadside_smtp_submission_duration_seconds_bucket', { result: 'accepted' }).map((x) => x.labels.le);
      expect(les).toEqual(expect.arrayContaining(['0.005', '30', '+Inf']));
    } finally {
      t.smtp.rejectRecipient = () => undefined;
    }
    // Let the workers go idle before the context's leak check.
    await workersIdle(t);
  });

  it("serves a worker's metrics on a port of its own, without the queue depths, and closes", async () => {
    const log = pino({ level: 'silent' });
    const server = await startMetricsServer(t.c.metrics, { port: 0, host: '127.0.0.1', log });
    let closed = false;
    try {
      expect(server.port).toBeGreaterThan(0);
      const res = await fetch(`http://127.0.0.1:${server.port}/metrics`);
      expect([res.status, res.headers.get('content-type')]).toEqual([200, 'text/plain; version=0.0.4; charset=utf-8']);
      const s = parseExposition(await res.text());
      expect(s.types.get('broadside_messages_total')).toBe('counter');
      expect(s.types.get('process_cpu_user_seconds_total')).toBe('counter');
      // The same counters as this container's API scrape.
      const api = await scrapeApp(t);
      expect(sum(s, 'broadside_messages_total', { outcome: 'submitted' })).toBe(sum(api, 'broadside_messages_total', { outcome: 'submitted' }));
      // Queue depths come from the API only, so sum() over every target stays right.
      expect(s.types.has('broadside_queue_jobs')).toBe(false);

      const other = await fetch(`http://127.0.0.1:${server.port}/`);
      expect(other.status).toBe(404);
      await other.text();
      expect((await fetch(`http://127.0.0.1:${server.port}/metrics`, { method: 'POST' })).status).toBe(404);

      // A second worker on the same port: no metrics for it, but no crash either.
      expect(await startWorkerMetrics(t.c.metrics, { port: server.port, host: '127.0.0.1', log })).toBeUndefined();

      await server.close();
      closed = true;
      await expect(fetch(`http://127.0.0.1:${server.port}/metrics`)).rejects.toThrow();
    } finally {
      if (!closed) await server.close();
    }
  });
});

describe('a worker-only process (npm run start:worker)', () => {
  const t = useTestContext();
  afterAll(() => killAllWorkerProcesses());

  it('serves GET /metrics on METRICS_PORT and stops on SIGTERM', async () => {
    const port = await freePort();
    const worker = startWorkerProcess(t.config, { env: { METRICS_PORT: String(port), HOST: '127.0.0.1' } });
    await worker.started;
    const text = await until('the worker metrics server', async () => {
      try {
        const res = await fetch(`http://127.0.0.1:${port}/metrics`);
        return res.status === 200 && (await res.text());
      } catch {
        return undefined;
      }
    });
    const s = parseExposition(text);
    expect(s.types.get('broadside_messages_total')).toBe('counter');
    expect(s.types.get('broadside_smtp_submission_duration_seconds')).toBe('histogram');
    expect(s.types.has('broadside_queue_jobs')).toBe(false);
    worker.kill('SIGTERM');
    expect(await worker.exited).toEqual({ code: 0, signal: null });
  });
});

/** A port nothing listens on right now (bound to 0, then released). */
async function freePort(): Promise<number> {
  const server = createTcpServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/**
 * A TCP proxy in front of the real Redis that can hold every byte (a Redis that takes commands
 * and never answers: a hung server, a partition) or drop every connection (a Redis that is down).
 */
class RedisProxy {
  private server!: Server;
  private readonly pairs = new Set<{ client: Socket; upstream: Socket; held: [Socket, Buffer][] }>();
  private mode: 'pass' | 'hold' | 'down' = 'pass';
  port = 0;

  async start(): Promise<this> {
    const target = new URL(REDIS_URL);
    this.server = createTcpServer((client) => {
      if (this.mode === 'down') return client.destroy();
      const upstream = connect(Number(target.port || 6379), target.hostname);
      const pair = { client, upstream, held: [] as [Socket, Buffer][] };
      this.pairs.add(pair);
      const forward = (to: Socket) => (chunk: Buffer) => {
        if (this.mode === 'hold') pair.held.push([to, chunk]);
        else to.write(chunk);
      };
      client.on('data', forward(upstream));
      upstream.on('data', forward(client));
      const end = () => {
        client.destroy();
        upstream.destroy();
        this.pairs.delete(pair);
      };
      client.on('close', end).on('error', end);
      upstream.on('close', end).on('error', end);
    });
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  hold(): void {
    this.mode = 'hold';
  }

  down(): void {
    this.mode = 'down';
    for (const p of this.pairs) p.client.destroy();
  }

  /** Back to normal: what was held goes through, in order. */
  pass(): void {
    this.mode = 'pass';
    for (const p of this.pairs) for (const [to, chunk] of p.held.splice(0)) to.write(chunk);
  }

  close(): Promise<void> {
    for (const p of this.pairs) p.client.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

describe('GET /metrics when Redis does not answer', () => {
  let proxy: RedisProxy;
  let t: TestContext;

  beforeAll(async () => {
    proxy = await new RedisProxy().start();
    t = await createTestContext({ env: { REDIS_URL: proxy.url } });
    // The queues re-emit the connection's errors, which the container already logs; without a
    // listener BullMQ prints each one with console.error.
    for (const q of [t.c.queues.readerMail, t.c.queues.fanout, t.c.queues.deliver]) q.on('error', (err) => t.c.log.debug({ err }, 'queue error'));
  });
  afterAll(async () => {
    proxy.pass();
    await t?.close();
    await proxy.close();
  });

  const scrapeWithin = async (ms: number): Promise<Scrape> => {
    const started = Date.now();
    const s = await scrapeApp(t);
    expect(Date.now() - started).toBeLessThan(ms);
    return s;
  };

  it('still answers, within the bound, with everything but the queue depths', async () => {
    expect(sum(await scrapeWithin(2000), 'broadside_queue_depth_available')).toBe(1);

    proxy.hold();
    const held = await scrapeWithin(5000);
    expect(sum(held, 'broadside_queue_depth_available')).toBe(0);
    expect(matching(held, 'broadside_queue_jobs')).toEqual([]);
    expect(held.types.get('broadside_messages_total')).toBe('counter');
    expect(sum(held, 'broadside_http_requests_total', { route: '/metrics' })).toBeGreaterThanOrEqual(1);
    expect(sum(held, 'nodejs_heap_size_used_bytes')).toBeGreaterThan(0);

    proxy.down();
    const down = await scrapeWithin(5000);
    expect(sum(down, 'broadside_queue_depth_available')).toBe(0);
    expect(down.types.get('process_cpu_user_seconds_total')).toBe('counter');

    // Back: the next scrape reads the depths again (once ioredis has reconnected).
    proxy.pass();
    await until('queue depths to come back', async () => sum(await scrapeApp(t), 'broadside_queue_depth_available') === 1);
  });
});
