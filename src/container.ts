import type { Redis } from 'ioredis';
import type { AppConfig } from './config/index.js';
import { createPool, type Pool } from './db/pool.js';
import { createSmtpMailer, type Mailer } from './delivery/mailer.js';
import { createLogger, type Logger } from './log.js';
import { createQueues, type Queues } from './queues/index.js';
import { createProducerConnection } from './redis.js';
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
  templates: ReaderMailTemplates;
  /** Compiles issues with the issue template (emails/issue.mjml). */
  renderer: IssueRenderer;
  tokens: ReaderTokens;
  links: ReaderLinks;
  /** Signs message ids for VERP, the X-Broadside-Message header and the Message-ID. */
  messageTokens: MessageTokens;
  close(): Promise<void>;
};

export type ContainerOverrides = Partial<Pick<Container, 'log' | 'mailer'>>;

/** Where mail goes: SMTP_URL, or the built-in capture server on loopback. */
export function smtpUrlOf(config: AppConfig): string {
  return config.smtpUrl ?? `smtp://127.0.0.1:${config.captureSmtpPort}`;
}

export async function createContainer(config: AppConfig, overrides: ContainerOverrides = {}): Promise<Container> {
  const log = overrides.log ?? createLogger(config.logLevel);
  const dir = config.emailsDir ?? emailsDir;
  const [templates, issueFiles] = await Promise.all([loadReaderMailTemplates(dir), loadIssueTemplateFiles(dir)]);
  const renderer = new IssueRenderer(issueFiles, config.publicUrl);
  const pool = createPool(config.databaseUrl);
  pool.on('error', (err) => log.error({ err }, 'idle Postgres client error'));
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
  const queues = createQueues(redis, config.queuePrefix, { attempts: config.deliveryAttempts, delayMs: config.retryDelaySeconds * 1000 });
  const dkim = config.dkimDomain && config.dkimSelector && config.dkimPrivateKey
    ? { domainName: config.dkimDomain, keySelector: config.dkimSelector, privateKey: config.dkimPrivateKey }
    : undefined;
  const mailer = overrides.mailer ?? createSmtpMailer({ smtpUrl: smtpUrlOf(config), from: config.mailFrom, poolSize: config.smtpPoolSize, dkim });
  const tokens = new ReaderTokens(config.secret);
  const links = new ReaderLinks(config.publicUrl, tokens, config.confirmTokenTtlHours);
  return {
    config,
    log,
    pool,
    redis,
    queues,
    mailer,
    templates,
    renderer,
    tokens,
    links,
    messageTokens: new MessageTokens(config.secret),
    async close() {
      await queues.close();
      await mailer.close();
      redis.disconnect();
      await pool.end();
    },
  };
}
