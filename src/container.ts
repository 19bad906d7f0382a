import path from 'node:path';
import type { Redis } from 'ioredis';
import { createHttpsGet, type HttpsGet } from './bounces/providers/https-get.js';
import type { AppConfig } from './config/index.js';
import { createPool, type Pool } from './db/pool.js';
import { describeDatabaseError } from './db/unavailable.js';
import { createSmtpMailer, type Mailer } from './delivery/mailer.js';
import { createLogger, type Logger } from './log.js';
import { FsMediaStore, type MediaStore } from './media/store.js';
import { Metrics } from './metrics/metrics.js';
import { createQueues, type Queues } from './queues/index.js';
import { createProducerConnection } from './redis.js';
import { PublicArchive } from './issues/public-archive.js';
import { IssueRenderer, loadIssueTemplateFiles } from './rendering/issue.js';
import { emailsDir, loadReaderMailTemplates, type ReaderMailTemplates } from './rendering/reader-mail.js';
import { MessageTokens } from './sending/message-tokens.js';
import { ReaderLinks } from './subscribers/links.js';
import { ReaderTokens } from './subscribers/reader-tokens.js';

/**
 * The composition root: the one place that turns configuration into connected services.
 * The API process, the worker process, scripts and tests all build their world here.
 */
export type Container = {
  config: AppConfig;
  log: Logger;
  pool: Pool;
  /** Producer connection (fails fast when Redis is down); workers open their own. */
  redis: Redis;
  queues: Queues;
  mailer: Mailer;
  /**
   * The reader mails (confirmation, welcome), compiled on first use and kept: a worker that
   * only delivers issues never loads MJML. The API compiles them at start to fail fast.
   */
  readerMail(): Promise<ReaderMailTemplates>;
  /** Compiles issues with the issue template (emails/issue.mjml). */
  renderer: IssueRenderer;
  /** The public archive's pages, prepared once per change of the archive (issues/public-archive.ts). */
  archive: PublicArchive;
  tokens: ReaderTokens;
  links: ReaderLinks;
  /** Signs message ids for VERP, the X-Broadside-Message header and the Message-ID. */
  messageTokens: MessageTokens;
  /** Prometheus metrics of this container (its own registry: many containers can share a process). */
  metrics: Metrics;
  /** Bounded HTTPS GET for what SNS asks us to fetch (its certificate, a SubscribeURL); a stub in tests. */
  httpsGet: HttpsGet;
  /** The editor's uploaded images (DATA_DIR/media): content-addressed, immutable. */
  media: MediaStore;
  close(): Promise<void>;
};

export type ContainerOverrides = Partial<Pick<Container, 'log' | 'mailer' | 'httpsGet'>>;

/** Where mail goes: SMTP_URL, or the built-in capture server on loopback. */
export function smtpUrlOf(config: AppConfig): string {
  return config.smtpUrl ?? `smtp://127.0.0.1:${config.captureSmtpPort}`;
}

export async function createContainer(config: AppConfig, overrides: ContainerOverrides = {}): Promise<Container> {
  const log = overrides.log ?? createLogger(config.logLevel);
  const dir = config.emailsDir ?? emailsDir;
  const issueFiles = await loadIssueTemplateFiles(dir);
  let readerMail: Promise<ReaderMailTemplates> | undefined;
  const media = new FsMediaStore(path.join(config.dataDir, 'media'));
  // The size warning counts the uploaded images an issue shows.
  const renderer = new IssueRenderer(issueFiles, config.publicUrl, (name) => media.size(name));
  const pool = createPool(config.databaseUrl);
  // A connection Postgres ends (restart, failover, pg_terminate_backend, a proxy restarting)
  // emits 'error' on its client. pg-pool listens only while the client is idle in the pool; a
  // client checked out (a transaction, the fan-out's lock) would end the process with an
  // unhandled 'error'. Every client gets a listener of its own for its whole life: the query in
  // progress fails with the error, and a broken client is dropped when released.
  pool.on('connect', (client) => {
    client.on('error', (err) => log.warn({ err: describeDatabaseError(err) }, 'Postgres connection lost'));
  });
  // The same error of an idle client, as the pool reports it: the line above already said it.
  pool.on('error', (err) => log.debug({ err: describeDatabaseError(err) }, 'idle Postgres client removed'));
  const redis = createProducerConnection(config.redisUrl);
  redis.on('error', (err) => log.warn({ err: err.message }, 'Redis connection error'));
  try {
    await redis.connect();
    await pool.query('SELECT 1');
  } catch (err) {
    redis.disconnect();
    await pool.end();
    throw err;
  }
  const queues = createQueues(
    redis,
    config.queuePrefix,
    { attempts: config.deliveryAttempts, delayMs: config.retryDelaySeconds * 1000 },
    // The connection's own listener above already warns; this keeps BullMQ off the console.
    (err, queue) => log.debug({ err: err.message, queue }, 'queue connection error'),
  );
  const dkim =
    config.dkimDomain && config.dkimSelector && config.dkimPrivateKey
      ? { domainName: config.dkimDomain, keySelector: config.dkimSelector, privateKey: config.dkimPrivateKey }
      : undefined;
  const mailer = overrides.mailer ?? createSmtpMailer({ smtpUrl: smtpUrlOf(config), from: config.mailFrom, poolSize: config.smtpPoolSize, dkim });
  const tokens = new ReaderTokens(config.secret);
  const links = new ReaderLinks(config.publicUrl, tokens, { confirmHours: config.confirmTokenTtlHours, dataMinutes: config.dataLinkTtlMinutes });
  return {
    config,
    log,
    pool,
    redis,
    queues,
    mailer,
    readerMail() {
      if (!readerMail) {
        readerMail = loadReaderMailTemplates(dir);
        // A failed compile is not kept: the next mail tries again (once the template is fixed).
        readerMail.catch(() => (readerMail = undefined));
      }
      return readerMail;
    },
    renderer,
    archive: new PublicArchive(pool),
    tokens,
    links,
    messageTokens: new MessageTokens(config.secret),
    metrics: new Metrics({ queues }),
    httpsGet: overrides.httpsGet ?? createHttpsGet(),
    media,
    async close() {
      await queues.close();
      await mailer.close();
      redis.disconnect();
      await pool.end();
    },
  };
}
