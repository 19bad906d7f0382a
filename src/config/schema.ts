// The one configuration schema. Every variable the service reads is declared here with its
// default and its parser; `parseConfig` reports every problem at once rather than the first.
import { createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { parseMailbox } from './mailbox.js';
import { parseNetwork, type Network } from './networks.js';
import { parsePublicKey } from './public-key.js';

export type Config = {
  port: number;
  host: string;
  publicUrl: string;
  databaseUrl: string;
  redisUrl: string;
  smtpUrl: string | undefined;
  apiToken: string | undefined;
  mailFrom: string;
  secret: string | undefined;
  bounceDomain: string | undefined;
  bounceSmtpPort: number | undefined;
  postalAddress: string | undefined;
  newsletterName: string;
  dataDir: string;
  captureSmtpPort: number;
  queuePrefix: string;
  logLevel: string;
  trustProxy: TrustProxy;
  httpHeadersTimeoutSeconds: number;
  httpBodyTimeoutSeconds: number;
  httpUploadTimeoutSeconds: number;
  httpIdleTimeoutSeconds: number;
  httpKeepAliveTimeoutSeconds: number;
  httpMaxConnectionsPerIp: number;
  signupRateLimit: number;
  signupRateWindowSeconds: number;
  editorSessionHours: number;
  signinRateLimit: number;
  signinRateWindowSeconds: number;
  confirmTokenTtlHours: number;
  dataLinkTtlMinutes: number;
  workerConcurrency: number;
  emailsDir: string | undefined;
  sendRate: number;
  deliveryConcurrency: number;
  smtpPoolSize: number;
  sendWindow: number;
  sendingTimeoutSeconds: number;
  deliveryAttempts: number;
  retryDelaySeconds: number;
  shutdownTimeoutSeconds: number;
  dkimDomain: string | undefined;
  dkimSelector: string | undefined;
  dkimPrivateKey: string | undefined;
  metricsPort: number;
  bounceMaxBytes: number;
  bounceMaxConnections: number;
  bounceMaxConnectionsPerIp: number;
  bounceMessagesPerIpPerMinute: number;
  bounceMaxRecipients: number;
  bounceBufferBytes: number;
  bounceTrustedIps: Network[];
  bounceReportRetentionDays: number;
  bounceUnmatchedReportRetentionDays: number;
  softBounceLimit: number;
  softBounceWindowDays: number;
  bounceRateThreshold: number;
  complaintRateThreshold: number;
  rateGuardMinMessages: number;
  pauseOnHighRates: boolean;
  sesSnsTopicArns: string[] | undefined;
  postmarkWebhookUser: string | undefined;
  postmarkWebhookPassword: string | undefined;
  sendgridWebhookPublicKey: string | undefined;
  mailgunWebhookSigningKey: string | undefined;
  webhookToleranceSeconds: number;
  mediaMaxBytes: number;
  previewLinkTtlMinutes: number;
};

/**
 * Who may say where a request came from (X-Forwarded-For): nobody; the nearest `hops` peers,
 * whatever their address; or peers at these addresses and ranges (IP, IP/prefix, or one of
 * PROXY_RANGES' names). Never "everybody": the client writes the left end of the header.
 */
export type TrustProxy = false | { hops: number } | { addresses: string[] };

/** Names TRUST_PROXY takes for whole ranges (the names Fastify's proxy-addr knows). */
export const PROXY_RANGES: Record<string, string[]> = {
  loopback: ['127.0.0.0/8', '::1/128'],
  linklocal: ['169.254.0.0/16', 'fe80::/10'],
  uniquelocal: ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', 'fc00::/7'],
};

type Parser<T> = (raw: string) => T;
type Field<T> = { env: string; parse: Parser<T>; default?: T };

class FieldError extends Error {}

const str = (raw: string) => raw;

function int(min: number, max: number): Parser<number> {
  return (raw) => {
    if (!/^\d+$/.test(raw.trim())) throw new FieldError(`must be a whole number, got "${raw}"`);
    const n = Number(raw);
    if (n < min || n > max) throw new FieldError(`must be between ${min} and ${max}, got ${n}`);
    return n;
  };
}

function url(protocols: string[]): Parser<string> {
  return (raw) => {
    let u: URL;
    try {
      u = new URL(raw);
    } catch {
      throw new FieldError(`must be a URL, got "${redactUrl(raw)}"`);
    }
    if (!protocols.includes(u.protocol)) {
      throw new FieldError(`must use ${protocols.join(' or ')}, got ${u.protocol}`);
    }
    return raw;
  };
}

function minLength(n: number): Parser<string> {
  return (raw) => {
    if (raw.length < n) throw new FieldError(`must be at least ${n} characters long`);
    return raw;
  };
}

function bool(raw: string): boolean {
  const v = raw.trim().toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(v)) return true;
  if (['0', 'false', 'no', 'off', ''].includes(v)) return false;
  throw new FieldError(`must be true or false, got "${raw}"`);
}

function domain(raw: string): string {
  const v = raw.trim().toLowerCase();
  if (!/^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$/.test(v)) {
    throw new FieldError(`must be a domain name such as bounces.example.com, got "${raw}"`);
  }
  return v;
}

function mailbox(raw: string): string {
  if (/[\r\n]/.test(raw)) throw new FieldError('must not contain line breaks');
  if (!/<[^<>@\s]+@[^<>@\s]+>$|^[^<>@\s]+@[^<>@\s]+$/.test(raw.trim())) {
    throw new FieldError(`must be an address such as "Newsletter <news@example.com>", got "${raw}"`);
  }
  return raw.trim();
}

/** A PEM private key, given inline or as the path of a file holding it. */
function pemOrFile(raw: string): string {
  const pem = raw.includes('-----BEGIN') ? raw.replace(/\\n/g, '\n') : readKeyFile(raw.trim());
  try {
    createPrivateKey(pem);
  } catch {
    throw new FieldError('must be a PEM private key (or the path of a file holding one)');
  }
  return pem;
}

function readKeyFile(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new FieldError(`names a file that cannot be read: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
  }
}

/** A percentage such as 5 or 0.1. */
function percent(raw: string): number {
  const v = raw.trim().replace(/%$/, '');
  if (!/^\d+(\.\d+)?$/.test(v) || Number(v) > 100) throw new FieldError(`must be a percentage between 0 and 100 such as 5 or 0.1, got "${raw}"`);
  return Number(v);
}

function list(raw: string): string[] {
  return raw.split(/[\s,]+/).filter(Boolean);
}

/** Addresses or networks (CIDR), separated by commas or spaces. */
function networks(raw: string): Network[] {
  const bad: string[] = [];
  const out: Network[] = [];
  for (const item of list(raw)) {
    try {
      out.push(parseNetwork(item));
    } catch {
      bad.push(item);
    }
  }
  if (bad.length > 0) throw new FieldError(`must be IP addresses or networks such as 192.0.2.7 or 10.0.0.0/8, got ${bad.map((b) => `"${b}"`).join(', ')}`);
  return out;
}

function oneOf<T extends string>(values: readonly T[]): Parser<T> {
  return (raw) => {
    const v = raw.trim().toLowerCase() as T;
    if (!values.includes(v)) throw new FieldError(`must be one of ${values.join(', ')}, got "${raw}"`);
    return v;
  };
}

const TRUST_PROXY_HELP =
  'the number of proxies in front of the service (1 for one nginx) or their addresses (such as 127.0.0.1 or 10.0.0.0/8, comma separated)';

function trustProxy(raw: string): TrustProxy {
  const v = raw.trim().toLowerCase();
  if (['0', 'false', 'no', 'off'].includes(v)) return false;
  if (['true', 'yes', 'on'].includes(v)) {
    throw new FieldError(`must not be "${raw}": trusting every proxy believes whatever X-Forwarded-For a client sends. Set ${TRUST_PROXY_HELP}`);
  }
  if (/^\d+$/.test(v)) {
    const hops = Number(v);
    if (hops > 10) throw new FieldError(`must be at most 10 proxy hops, got ${hops}`);
    return { hops };
  }
  const addresses = list(raw).map((a) => (Object.hasOwn(PROXY_RANGES, a.toLowerCase()) ? a.toLowerCase() : a));
  const everyone = addresses.filter((a) => /\/0+$/.test(a));
  if (everyone.length) throw new FieldError(`must not contain ${everyone.join(', ')}: a /0 range trusts every address, as "true" would`);
  const bad = addresses.filter((a) => !isProxyAddress(a));
  if (bad.length) throw new FieldError(`must be ${TRUST_PROXY_HELP}; not understood: ${bad.map((b) => `"${b}"`).join(', ')}`);
  return { addresses };
}

/** An IPv4 or IPv6 address, optionally with a /prefix, or a name from PROXY_RANGES. */
function isProxyAddress(entry: string): boolean {
  if (Object.hasOwn(PROXY_RANGES, entry)) return true;
  const [address = '', prefix, ...rest] = entry.split('/');
  const family = address.includes('%') ? 0 : isIP(address);
  if (family === 0 || rest.length > 0) return false;
  if (prefix === undefined) return true;
  return /^\d{1,3}$/.test(prefix) && Number(prefix) >= 1 && Number(prefix) <= (family === 4 ? 32 : 128);
}

/** Hides the password part of a URL so a config error never prints a secret. */
export function redactUrl(raw: string): string {
  return raw.replace(/\/\/([^:/@]*):([^@/]*)@/, '//$1:***@');
}

const fields = {
  port: { env: 'PORT', parse: int(0, 65535), default: 3000 },
  host: { env: 'HOST', parse: str, default: '0.0.0.0' },
  // Stored without a trailing slash so links are built as `${publicUrl}/path`. Unset, it follows
  // PORT (http://localhost:PORT, set in parseConfig): a laptop on another port gets working links.
  publicUrl: { env: 'PUBLIC_URL', parse: (raw: string) => url(['http:', 'https:'])(raw).replace(/\/+$/, '') },
  databaseUrl: { env: 'DATABASE_URL', parse: url(['postgres:', 'postgresql:']), default: 'postgres://localhost:5432/broadside' },
  redisUrl: { env: 'REDIS_URL', parse: url(['redis:', 'rediss:']), default: 'redis://127.0.0.1:6379' },
  smtpUrl: { env: 'SMTP_URL', parse: url(['smtp:', 'smtps:']) },
  apiToken: { env: 'API_TOKEN', parse: minLength(16) },
  mailFrom: { env: 'MAIL_FROM', parse: mailbox, default: 'Newsletter <newsletter@localhost>' },
  secret: { env: 'SECRET', parse: minLength(32) },
  bounceDomain: { env: 'BOUNCE_DOMAIN', parse: domain },
  bounceSmtpPort: { env: 'BOUNCE_SMTP_PORT', parse: int(0, 65535) },
  postalAddress: { env: 'POSTAL_ADDRESS', parse: str },
  newsletterName: { env: 'NEWSLETTER_NAME', parse: str, default: '' },
  dataDir: { env: 'DATA_DIR', parse: str, default: '.data' },
  captureSmtpPort: { env: 'CAPTURE_SMTP_PORT', parse: int(0, 65535), default: 2525 },
  queuePrefix: { env: 'QUEUE_PREFIX', parse: str, default: 'broadside' },
  logLevel: { env: 'LOG_LEVEL', parse: oneOf(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const), default: 'info' },
  trustProxy: { env: 'TRUST_PROXY', parse: trustProxy, default: false },
  // HTTP timeouts (the README's "HTTP timeouts and connection limits" explains the numbers).
  httpHeadersTimeoutSeconds: { env: 'HTTP_HEADERS_TIMEOUT_SECONDS', parse: int(1, 3600), default: 30 },
  // A request body, after its headers: every route but the CSV import takes at most 5 MB.
  httpBodyTimeoutSeconds: { env: 'HTTP_BODY_TIMEOUT_SECONDS', parse: int(1, 3600), default: 60 },
  // The editor's CSV import (up to 200 MB, read as it is stored), once the token is checked.
  httpUploadTimeoutSeconds: { env: 'HTTP_UPLOAD_TIMEOUT_SECONDS', parse: int(1, 86400), default: 3600 },
  // No byte either way while a request is under way (a stalled upload, download or handler).
  httpIdleTimeoutSeconds: { env: 'HTTP_IDLE_TIMEOUT_SECONDS', parse: int(1, 3600), default: 60 },
  // An idle kept-alive connection between requests; above the 60 s idle timeout of common load
  // balancers, so one never reuses a connection we have just closed.
  httpKeepAliveTimeoutSeconds: { env: 'HTTP_KEEP_ALIVE_TIMEOUT_SECONDS', parse: int(1, 3600), default: 72 },
  // Open connections from one peer address (0: no cap); see app.ts for when it applies.
  httpMaxConnectionsPerIp: { env: 'HTTP_MAX_CONNECTIONS_PER_IP', parse: int(0, 100000), default: 32 },
  signupRateLimit: { env: 'SIGNUP_RATE_LIMIT', parse: int(1, 100000), default: 10 },
  signupRateWindowSeconds: { env: 'SIGNUP_RATE_WINDOW_SECONDS', parse: int(1, 86400), default: 60 },
  // The editor's web app: how long a sign-in lasts, and how many sign-in attempts one address
  // may make (the API token is the only thing guarding the editor: guessing must be slow).
  editorSessionHours: { env: 'EDITOR_SESSION_HOURS', parse: int(1, 24 * 30), default: 12 },
  signinRateLimit: { env: 'SIGNIN_RATE_LIMIT', parse: int(1, 100000), default: 10 },
  signinRateWindowSeconds: { env: 'SIGNIN_RATE_WINDOW_SECONDS', parse: int(1, 86400), default: 300 },
  confirmTokenTtlHours: { env: 'CONFIRM_TOKEN_TTL_HOURS', parse: int(1, 24 * 90), default: 48 },
  // The emailed link that opens a reader's data (download, erasure): short-lived, since it is
  // the only credential for both.
  dataLinkTtlMinutes: { env: 'DATA_LINK_TTL_MINUTES', parse: int(5, 24 * 60), default: 60 },
  workerConcurrency: { env: 'WORKER_CONCURRENCY', parse: int(1, 1000), default: 10 },
  // A copy of emails/ to brand the templates; unset means the bundled ones.
  emailsDir: { env: 'EMAILS_DIR', parse: str },
  // Sending. The rate is global: every worker process shares it through Redis (0: unlimited).
  sendRate: { env: 'SEND_RATE', parse: int(0, 1_000_000), default: 0 },
  // More jobs than connections: while one job waits on Postgres or Redis, another uses the
  // connection (measured: 20/10 gave ~500/s, 50/20 ~680/s on the 2-core machine).
  deliveryConcurrency: { env: 'DELIVERY_CONCURRENCY', parse: int(1, 1000), default: 50 },
  smtpPoolSize: { env: 'SMTP_POOL_SIZE', parse: int(1, 200), default: 20 },
  sendWindow: { env: 'SEND_WINDOW', parse: int(10, 1_000_000), default: 10_000 },
  sendingTimeoutSeconds: { env: 'SENDING_TIMEOUT_SECONDS', parse: int(2, 3600), default: 120 },
  deliveryAttempts: { env: 'DELIVERY_ATTEMPTS', parse: int(1, 50), default: 6 },
  retryDelaySeconds: { env: 'RETRY_DELAY_SECONDS', parse: int(1, 3600), default: 5 },
  // How long a SIGTERM waits for requests and jobs in flight before the process gives up and
  // exits 1. Keep it below the supervisor's grace period (docker-compose.yml: 40 s).
  shutdownTimeoutSeconds: { env: 'SHUTDOWN_TIMEOUT_SECONDS', parse: int(1, 3600), default: 30 },
  dkimDomain: { env: 'DKIM_DOMAIN', parse: domain },
  dkimSelector: {
    env: 'DKIM_SELECTOR',
    parse: (raw: string) => {
      if (!/^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/i.test(raw.trim()))
        throw new FieldError(`must be a DNS label such as "s2026", got "${raw}"`);
      return raw.trim();
    },
  },
  dkimPrivateKey: { env: 'DKIM_PRIVATE_KEY', parse: pemOrFile },
  // GET /metrics of a worker-only process (the API serves its own on PORT); 0 turns it off.
  metricsPort: { env: 'METRICS_PORT', parse: int(0, 65535), default: 9464 },
  // Bounces. The listener (BOUNCE_SMTP_PORT) refuses mail bigger than this. A DSN is ~3 KB (we
  // ask for RET=HDRS); a report that carries our whole copy (an ARF report, an MTA ignoring
  // RET=HDRS) ~100 KB for a 30 KB issue: 1 MiB leaves ten times that.
  bounceMaxBytes: { env: 'BOUNCE_MAX_BYTES', parse: int(1024, 100 * 1024 * 1024), default: 1024 * 1024 },
  // The listener's limits (see bounces/inbound/listener.ts): connections at once, in all and from one address
  // (an IPv6 /64), mails (MAIL FROM) from one address a minute, recipients per mail. Past them
  // it answers 4xx, so a real sender retries later. BOUNCE_TRUSTED_IPS (your own relay, which
  // returns most DSNs) are exempt from the per-address ones.
  bounceMaxConnections: { env: 'BOUNCE_MAX_CONNECTIONS', parse: int(1, 100_000), default: 100 },
  bounceMaxConnectionsPerIp: { env: 'BOUNCE_MAX_CONNECTIONS_PER_IP', parse: int(1, 100_000), default: 10 },
  bounceMessagesPerIpPerMinute: { env: 'BOUNCE_MESSAGES_PER_IP_PER_MINUTE', parse: int(1, 1_000_000), default: 60 },
  bounceMaxRecipients: { env: 'BOUNCE_MAX_RECIPIENTS', parse: int(1, 1000), default: 10 },
  bounceTrustedIps: { env: 'BOUNCE_TRUSTED_IPS', parse: networks, default: [] },
  // The most bytes of incoming mail the listener holds in memory at once, across connections
  // (a mail's first 64 KiB always fit: DSNs are never refused for it). Past it, 452.
  bounceBufferBytes: { env: 'BOUNCE_BUFFER_BYTES', parse: int(64 * 1024, 4 * 1024 * 1024 * 1024), default: 16 * 1024 * 1024 },
  // Raw inbound reports are deleted after this many days: sooner when matched (the bounce rows
  // keep what was read from them), later when unmatched (the raw mail is all there is). 0 keeps
  // them for good.
  bounceReportRetentionDays: { env: 'BOUNCE_REPORT_RETENTION_DAYS', parse: int(0, 36_500), default: 30 },
  bounceUnmatchedReportRetentionDays: { env: 'BOUNCE_UNMATCHED_REPORT_RETENTION_DAYS', parse: int(0, 36_500), default: 90 },
  // A reader is suppressed after this many soft bounces within the window (a later message that
  // goes through resets the count).
  softBounceLimit: { env: 'SOFT_BOUNCE_LIMIT', parse: int(1, 1000), default: 3 },
  softBounceWindowDays: { env: 'SOFT_BOUNCE_WINDOW_DAYS', parse: int(1, 3650), default: 30 },
  // A send whose rates pass these (in %) is flagged, and paused unless PAUSE_ON_HIGH_RATES=false,
  // once at least RATE_GUARD_MIN_MESSAGES of its messages reached the relay.
  bounceRateThreshold: { env: 'BOUNCE_RATE_THRESHOLD', parse: percent, default: 5 },
  complaintRateThreshold: { env: 'COMPLAINT_RATE_THRESHOLD', parse: percent, default: 0.1 },
  rateGuardMinMessages: { env: 'RATE_GUARD_MIN_MESSAGES', parse: int(1, 1_000_000_000), default: 100 },
  pauseOnHighRates: { env: 'PAUSE_ON_HIGH_RATES', parse: bool, default: true },
  // Provider webhooks (POST /webhooks/bounces/<provider>). The keys and passwords are secrets.
  sesSnsTopicArns: { env: 'SES_SNS_TOPIC_ARNS', parse: list },
  postmarkWebhookUser: { env: 'POSTMARK_WEBHOOK_USER', parse: str },
  postmarkWebhookPassword: { env: 'POSTMARK_WEBHOOK_PASSWORD', parse: minLength(12) },
  sendgridWebhookPublicKey: {
    env: 'SENDGRID_WEBHOOK_PUBLIC_KEY',
    parse: (raw: string) => {
      try {
        parsePublicKey(raw);
      } catch {
        throw new FieldError('must be the verification key SendGrid shows for the signed event webhook (base64 or PEM)');
      }
      return raw.trim();
    },
  },
  mailgunWebhookSigningKey: { env: 'MAILGUN_WEBHOOK_SIGNING_KEY', parse: minLength(16) },
  webhookToleranceSeconds: { env: 'WEBHOOK_TOLERANCE_SECONDS', parse: int(10, 86400), default: 300 },
  // Images the editor uploads (POST /api/media), in bytes: 5 MiB by default (5,242,880 bytes).
  mediaMaxBytes: { env: 'MEDIA_MAX_BYTES', parse: int(1024, 100 * 1024 * 1024), default: 5 * 1024 * 1024 },
  // How long a browser preview link (POST /api/issues/:id/preview-link) opens the draft.
  previewLinkTtlMinutes: { env: 'PREVIEW_LINK_TTL_MINUTES', parse: int(1, 7 * 24 * 60), default: 60 },
} satisfies { [K in keyof Config]: Field<Config[K]> };

/** Every environment variable the service reads, for docs and for checking docker-compose.yml. */
export const configVariables: string[] = Object.values(fields).map((f) => f.env);

/** PUBLIC_URL when it is unset: this machine on PORT. */
export const defaultPublicUrl = (port: number): string => `http://localhost:${port}`;

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
  }
}

export function parseConfig(env: Record<string, string | undefined>): Config {
  const problems: string[] = [];
  const out: Record<string, unknown> = {};
  for (const [key, field] of Object.entries(fields) as [string, Field<unknown>][]) {
    const raw = env[field.env];
    if (raw === undefined || raw === '') {
      out[key] = field.default;
      continue;
    }
    try {
      out[key] = field.parse(raw);
    } catch (err) {
      if (!(err instanceof FieldError)) throw err;
      problems.push(`${field.env} ${err.message}`);
    }
  }
  const dkim = [out.dkimDomain, out.dkimSelector, out.dkimPrivateKey].filter((v) => v !== undefined).length;
  if (dkim !== 0 && dkim !== 3) problems.push('DKIM_DOMAIN, DKIM_SELECTOR and DKIM_PRIVATE_KEY go together: set all three or none');
  if ((out.postmarkWebhookUser === undefined) !== (out.postmarkWebhookPassword === undefined)) {
    problems.push('POSTMARK_WEBHOOK_USER and POSTMARK_WEBHOOK_PASSWORD go together: set both or neither');
  }
  if (
    typeof out.httpHeadersTimeoutSeconds === 'number' &&
    typeof out.httpUploadTimeoutSeconds === 'number' &&
    out.httpHeadersTimeoutSeconds > out.httpUploadTimeoutSeconds
  ) {
    // Node refuses to start with it: the upload's bound is the whole request's, headers included.
    problems.push('HTTP_HEADERS_TIMEOUT_SECONDS must not be longer than HTTP_UPLOAD_TIMEOUT_SECONDS (the headers are part of the request)');
  }
  if (typeof out.bounceBufferBytes === 'number' && typeof out.bounceMaxBytes === 'number' && out.bounceBufferBytes < out.bounceMaxBytes) {
    problems.push(
      `BOUNCE_BUFFER_BYTES (${out.bounceBufferBytes}) must be at least BOUNCE_MAX_BYTES (${out.bounceMaxBytes}): a mail the listener allows must fit in memory`,
    );
  }
  if (problems.length > 0) throw new ConfigError(problems);
  const config = out as Config;
  config.publicUrl ??= defaultPublicUrl(config.port);
  if (!config.newsletterName) config.newsletterName = parseMailbox(config.mailFrom).name ?? 'Newsletter';
  return config;
}
