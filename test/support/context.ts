import { randomBytes } from 'node:crypto';
import { afterAll, afterEach, beforeAll } from '@jest/globals';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Writable } from 'node:stream';
import { pino } from 'pino';
import { loggerOptions } from '../../src/log.js';
import { buildApp } from '../../src/api/app.js';
import { parseConfig, type AppConfig } from '../../src/config/index.js';
import { createContainer, type Container } from '../../src/container.js';
import { startWorkers, type RunningWorker } from '../../src/worker/worker.js';
import { createTestDatabase, databaseUrl, dropTestDatabase } from './db.js';
import { deleteKeys, REDIS_URL } from './redis-keys.js';
import { SmtpSink, type SmtpSinkOptions } from './smtp-sink.js';

export const TEST_TOKEN = 'test-editor-token-0123456789';
export { REDIS_URL };

export type TestContext = {
  config: AppConfig;
  c: Container;
  app: FastifyInstance;
  smtp: SmtpSink;
  worker: RunningWorker | undefined;
  auth: { authorization: string };
  /** Fails the test when a Postgres client was checked out and not returned. */
  assertNoLeaks(): void;
  close(): Promise<void>;
};

/**
 * Everything one test file needs, isolated from the others running in parallel: its own
 * database (copied from the migrated template), its own queue prefix in Redis, its own SMTP
 * server on a free port, and its own data directory.
 */
export async function createTestContext(
  opts: { worker?: boolean; env?: Record<string, string>; logTo?: Writable; smtp?: SmtpSinkOptions; databaseUrl?: string } = {},
): Promise<TestContext> {
  // A database of the test's own (on a Postgres it runs itself, see own-postgres.ts) is the
  // test's to create and drop; else one is copied from the template on the shared server.
  const dbName = opts.databaseUrl ? undefined : await createTestDatabase();
  const smtp = await new SmtpSink(opts.smtp).start();
  const dataDir = await mkdtemp(path.join(tmpdir(), 'broadside-test-'));
  const prefix = `bs-test-${randomBytes(4).toString('hex')}`;
  const parsed = parseConfig({
    DATABASE_URL: opts.databaseUrl ?? databaseUrl(dbName!),
    REDIS_URL,
    SMTP_URL: smtp.url,
    API_TOKEN: TEST_TOKEN,
    SECRET: 'test-secret-that-is-long-enough-0123456789',
    PUBLIC_URL: 'http://broadside.test',
    MAIL_FROM: 'The Test Letter <news@broadside.test>',
    POSTAL_ADDRESS: '1 Test Street, Testville',
    QUEUE_PREFIX: prefix,
    DATA_DIR: dataDir,
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    ...opts.env,
  });
  const config = { ...parsed, apiToken: parsed.apiToken!, secret: parsed.secret! };
  // The service's own logger options (redaction, URL masking), writing where the test says.
  const log = opts.logTo ? pino({ ...loggerOptions(config.logLevel), transport: undefined }, opts.logTo) : pino({ level: config.logLevel });
  const c = await createContainer(config, { log });
  const app = await buildApp(c);
  await app.ready();
  const worker = opts.worker ? startWorkers(c) : undefined;
  return {
    config,
    c,
    app,
    smtp,
    worker,
    auth: { authorization: `Bearer ${TEST_TOKEN}` },
    assertNoLeaks() {
      const busy = c.pool.totalCount - c.pool.idleCount;
      if (busy !== 0) throw new Error(`${busy} Postgres client(s) still checked out`);
    },
    async close() {
      await worker?.close();
      await app.close();
      await c.close();
      await smtp.close();
      await deleteKeys(prefix);
      if (dbName) await dropTestDatabase(dbName);
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/**
 * The usual life of a test file's context: built before its tests, checked for leaked Postgres
 * clients after each, closed at the end. The returned object is filled in by `beforeAll`, so
 * use it only inside hooks and tests.
 */
export function useTestContext(opts: Parameters<typeof createTestContext>[0] = {}): TestContext {
  const t = {} as TestContext;
  beforeAll(async () => {
    Object.assign(t, await createTestContext(opts));
  });
  afterEach(() => t.assertNoLeaks());
  afterAll(async () => {
    await t.close?.();
  });
  return t;
}

/** The first link in a text part whose path starts with `prefix`. */
export function linkIn(text: string, prefix: string): string {
  const m = new RegExp(`https?://[^\\s>"]+${prefix.replace(/[/]/g, '\\/')}[^\\s>"]+`).exec(text);
  if (!m) throw new Error(`no ${prefix} link in:\n${text}`);
  return m[0];
}

/** The path (and query) of an absolute URL, for app.inject. */
export function pathOf(url: string): string {
  const u = new URL(url);
  return u.pathname + u.search;
}
