// Prometheus metrics. Every Container has its own Metrics (its own prom-client Registry), so a
// test process that builds many containers never meets "metric already registered", and one
// container's counts never leak into another's scrape. Node's default metrics describe the
// process, not a container: they live in one registry per process (see processRegistry).
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { BounceSource, BounceType } from '../shared/statuses.js';
import type { DeliverOutcome } from '../shared/statuses.js';
import type { Queues } from '../queues/index.js';
import { QUEUE_STATES, readQueueDepths, type QueueDepth } from './queue-depth.js';

/** The route label of a request that matched no route (a 404 from the router). */
const UNMATCHED_ROUTE = 'unmatched';

/** Outcomes a deliver job counts; `not_claimed` (nothing to do: already done, or paused) is not one. */
const MESSAGE_OUTCOMES = ['submitted', 'bounced', 'failed', 'cancelled'] as const satisfies readonly DeliverOutcome[];

/** Why a deliver job goes round again instead of ending. */
export type RetryReason = 'temporary' | 'backed_off' | 'relay_unavailable' | 'database_unavailable';
const RETRY_REASONS = ['temporary', 'backed_off', 'relay_unavailable', 'database_unavailable'] as const satisfies readonly RetryReason[];

/** Why a sign-up did nothing (the reader is answered the same either way). */
export type IgnoredSignupReason = 'honeypot' | 'unchanged';

export type SmtpResult = 'accepted' | 'error';

const LISTENER_REFUSALS = ['connections', 'connections_per_ip', 'rate', 'size', 'memory'] as const;
export type ListenerRefusal = (typeof LISTENER_REFUSALS)[number];

/** How the relay refused a transaction that said nothing about the reader (see classify-smtp-error.ts). */
export type SmtpRefusal = 'throttled' | 'relay';

/** From ~5 ms (a relay on the same host) to 30 s (nodemailer's socket timeout). */
const SMTP_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const HTTP_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const HTTP_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

/** A scrape reads queue depths from Redis for at most this long, then answers without them. */
const QUEUE_DEPTH_TIMEOUT_MS = 2000;

let processRegistry: Registry | undefined;

/**
 * Node's own metrics (CPU, memory, event loop lag, GC), once per process: collectDefaultMetrics
 * starts observers it never stops, so starting it per container would pile them up.
 */
function processMetrics(): Registry {
  if (!processRegistry) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry });
  }
  return processRegistry;
}

export type MetricsOptions = {
  /** Queues whose depths a scrape reports (only when asked to: see `scrape`). */
  queues?: Queues;
  queueDepthTimeoutMs?: number;
};

export class Metrics {
  readonly contentType = Registry.PROMETHEUS_CONTENT_TYPE;
  private readonly registry = new Registry();
  /** Separate, so a worker's scrape can leave out what the API already reports. */
  private readonly queueRegistry = new Registry();

  private readonly httpRequests = new Counter({
    name: 'broadside_http_requests_total',
    help: 'HTTP requests answered, by route pattern (never the raw URL: reader tokens live in URLs; "unmatched" for a 404 with no route), method and status code.',
    labelNames: ['route', 'method', 'status_code'] as const,
    registers: [this.registry],
  });

  private readonly httpDuration = new Histogram({
    name: 'broadside_http_request_duration_seconds',
    help: 'Time from receiving an HTTP request to the end of its answer, by route pattern and method.',
    labelNames: ['route', 'method'] as const,
    buckets: HTTP_BUCKETS,
    registers: [this.registry],
  });

  private readonly messages = new Counter({
    name: 'broadside_messages_total',
    help: 'Issue messages that reached an end in this process: submitted (the relay answered 250), bounced (a permanent 5xx refusal at submission: the reader is suppressed), failed (temporary refusals until the last attempt), cancelled (the reader left, or the send was cancelled, before their turn).',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });

  private readonly retries = new Counter({
    name: 'broadside_delivery_retries_total',
    help: 'Deliver jobs that will run again: temporary (a 4xx refusal of the recipient or message: retried with backoff, an attempt spent), backed_off (the relay throttled this transaction or failed once: the message waits a little, no attempt spent) or relay_unavailable (the relay refused a run of transactions: every worker waits, no attempt spent).',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });

  private readonly smtpRefusals = new Counter({
    name: 'broadside_smtp_refusals_total',
    help: 'Issue message transactions the relay refused without a word about the reader, each backing off its message (no attempt spent, no bounce) and narrowing the concurrency limit: kind throttled (421, a 4xx at MAIL FROM, a 4xx that says it throttles) or relay (connection refused, reset, timed out or closed, greeting, login or sender refused; a 421 on a reused connection before the message was sent reaches us as the connection closed).',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  });

  private readonly smtpLimit = new Gauge({
    name: 'broadside_smtp_concurrency_limit',
    help: 'Issue messages this process submits at once at most: SMTP_POOL_SIZE, lowered while the relay throttles or fails (each refusal takes a tenth away), raised again as it answers.',
    registers: [this.registry],
  });

  private readonly smtpDuration = new Histogram({
    name: 'broadside_smtp_submission_duration_seconds',
    help: "Time to submit one issue message over SMTP, from handing it to the connection pool (so including any wait for a free connection) to the relay's answer; result is accepted (250) or error (a refusal, a timeout or a lost connection).",
    labelNames: ['result'] as const,
    buckets: SMTP_BUCKETS,
    registers: [this.registry],
  });

  private readonly signups = new Counter({
    name: 'broadside_signups_total',
    help: 'Sign-ups that queued a confirmation email: a new address, or a known address that is not active and had no confirmation in the last 10 minutes.',
    registers: [this.registry],
  });

  private readonly signupsIgnored = new Counter({
    name: 'broadside_signups_ignored_total',
    help: 'Sign-ups that changed nothing, answered like any other: honeypot (the hidden field was filled: a bot) or unchanged (the address is active, or was sent a confirmation in the last 10 minutes).',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });

  private readonly confirmations = new Counter({
    name: 'broadside_confirmations_total',
    help: 'Confirmations that activated a reader (pressing the button again once active does not count).',
    registers: [this.registry],
  });

  private readonly bounces = new Counter({
    name: 'broadside_bounces_total',
    help: 'Bounce records written by this process: type hard, soft, complaint or other; source smtp (refused at submission), dsn or arf (the bounce listener), or a provider webhook; matched false when no reader could be found (kept, see GET /api/bounces?matched=false).',
    labelNames: ['type', 'source', 'matched'] as const,
    registers: [this.registry],
  });

  private readonly listenerRefusals = new Counter({
    name: 'broadside_bounce_listener_refusals_total',
    help: 'What the bounce listener refused with a 4xx or 5xx to protect itself (a real sender retries the 4xx ones later): connections (BOUNCE_MAX_CONNECTIONS reached), connections_per_ip (BOUNCE_MAX_CONNECTIONS_PER_IP), rate (BOUNCE_MESSAGES_PER_IP_PER_MINUTE), size (over BOUNCE_MAX_BYTES), memory (BOUNCE_BUFFER_BYTES in use).',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });

  private readonly reportsPruned = new Counter({
    name: 'broadside_inbound_reports_pruned_total',
    help: 'Raw inbound reports deleted by this process after their retention period (BOUNCE_REPORT_RETENTION_DAYS when matched, BOUNCE_UNMATCHED_REPORT_RETENTION_DAYS when not).',
    registers: [this.registry],
  });

  constructor(opts: MetricsOptions = {}) {
    processMetrics();
    // Series that exist from the start, so rate() and alerts see a 0 rather than nothing.
    for (const outcome of MESSAGE_OUTCOMES) this.messages.inc({ outcome }, 0);
    for (const reason of RETRY_REASONS) this.retries.inc({ reason }, 0);
    for (const kind of ['throttled', 'relay'] as const) this.smtpRefusals.inc({ kind }, 0);
    for (const reason of ['honeypot', 'unchanged'] as const) this.signupsIgnored.inc({ reason }, 0);
    for (const reason of LISTENER_REFUSALS) this.listenerRefusals.inc({ reason }, 0);
    if (opts.queues) this.watchQueues(opts.queues, opts.queueDepthTimeoutMs ?? QUEUE_DEPTH_TIMEOUT_MS);
  }

  /**
   * Each HTTP series's counter and histogram with their labels bound, by route, method and status:
   * building the label objects again for every request cost more than counting it. As many
   * entries as series (route patterns × methods × status codes, all bounded).
   */
  private readonly httpSeries = new Map<string, { count: Counter.Internal; duration: Histogram.Internal<'route' | 'method'> }>();

  httpRequest(route: string | undefined, method: string, statusCode: number, seconds: number): void {
    const m = HTTP_METHODS.has(method) ? method : 'other';
    const key = `${statusCode} ${m} ${route ?? ''}`;
    let series = this.httpSeries.get(key);
    if (!series) {
      const labels = { route: route ?? UNMATCHED_ROUTE, method: m };
      series = { count: this.httpRequests.labels({ ...labels, status_code: String(statusCode) }), duration: this.httpDuration.labels(labels) };
      this.httpSeries.set(key, series);
    }
    series.count.inc();
    series.duration.observe(seconds);
  }

  /** Counts how a deliver job ended; `not_claimed` is not counted. */
  messageOutcome(outcome: DeliverOutcome): void {
    if (outcome !== 'not_claimed') this.messages.inc({ outcome });
  }

  deliveryRetry(reason: RetryReason): void {
    this.retries.inc({ reason });
  }

  smtpRefused(kind: SmtpRefusal): void {
    this.smtpRefusals.inc({ kind });
  }

  smtpConcurrencyLimit(limit: number): void {
    this.smtpLimit.set(limit);
  }

  /** Starts timing one SMTP submission; call the result with how it ended. */
  smtpSubmission(): (result: SmtpResult) => void {
    const end = this.smtpDuration.startTimer();
    return (result) => {
      end({ result });
    };
  }

  bounceRecorded(type: BounceType, source: BounceSource, matched: boolean): void {
    this.bounces.inc({ type, source, matched: String(matched) });
  }

  listenerRefused(reason: ListenerRefusal): void {
    this.listenerRefusals.inc({ reason });
  }

  inboundReportsPruned(n: number): void {
    this.reportsPruned.inc(n);
  }

  signup(): void {
    this.signups.inc();
  }

  signupIgnored(reason: IgnoredSignupReason): void {
    this.signupsIgnored.inc({ reason });
  }

  confirmation(): void {
    this.confirmations.inc();
  }

  /**
   * The exposition text: the process's default metrics and this container's; with `queues`, the
   * queue depths too. Only the API asks for them: they are the same from every process, and one
   * source keeps sum() across targets right. A Redis that is down or does not answer within
   * the timeout costs the queue depths, never the scrape.
   */
  async scrape(opts: { queues?: boolean } = {}): Promise<string> {
    const registries = [processMetrics(), this.registry, ...(opts.queues ? [this.queueRegistry] : [])];
    const texts = await Promise.all(registries.map((r) => r.metrics()));
    return texts.join('\n');
  }

  private watchQueues(queues: Queues, timeoutMs: number): void {
    // prom-client collects every metric of a registry at once: both gauges share one read.
    let inFlight: Promise<QueueDepth[] | undefined> | undefined;
    const read = () =>
      (inFlight ??= readQueueDepths(queues, timeoutMs).finally(() => {
        inFlight = undefined;
      }));
    new Gauge({
      name: 'broadside_queue_jobs',
      help: `Jobs in each BullMQ queue by state (${QUEUE_STATES.join(', ')}), read from Redis at scrape time; absent when Redis did not answer (see broadside_queue_depth_available).`,
      labelNames: ['queue', 'state'] as const,
      registers: [this.queueRegistry],
      async collect() {
        const depths = await read();
        this.reset();
        for (const { queue, counts } of depths ?? []) {
          for (const state of QUEUE_STATES) this.set({ queue, state }, counts[state] ?? 0);
        }
      },
    });
    new Gauge({
      name: 'broadside_queue_depth_available',
      help: `1 when this scrape read the queue depths from Redis, 0 when Redis failed or did not answer within ${timeoutMs / 1000} s.`,
      registers: [this.queueRegistry],
      async collect() {
        this.set((await read()) ? 1 : 0);
      },
    });
  }
}
