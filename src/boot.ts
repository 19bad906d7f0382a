import path from 'node:path';
import { buildApp } from './api/app.js';
import { startCaptureServer, type CaptureServer } from './capture/capture-server.js';
import { ConfigError, parseConfig, redactUrl, withDevSecrets, type AppConfig } from './config/index.js';
import { createContainer, type Container } from './container.js';
import { ensureDatabase } from './db/ensure-database.js';
import { migrate } from './db/migrate.js';
import { createLogger, type Logger } from './log.js';
import { startWorkers } from './worker/worker.js';

export type Role = 'api' | 'worker';

/** Reads and validates the environment; on error prints every problem and exits 1. */
export async function loadConfig(log: Logger): Promise<{ config: AppConfig; generatedToken: boolean }> {
  try {
    return await withDevSecrets(parseConfig(process.env));
  } catch (err) {
    if (err instanceof ConfigError) {
      log.fatal({ problems: err.problems }, err.message);
      process.exit(1);
    }
    throw err;
  }
}

/** Creates the database if missing and applies pending migrations (safe to run concurrently). */
export async function prepareDatabase(config: AppConfig, log: Logger): Promise<void> {
  if (await ensureDatabase(config.databaseUrl)) log.info({ database: redactUrl(config.databaseUrl) }, 'created database');
  const applied = await migrate(config.databaseUrl, log);
  if (applied.length) log.info({ applied }, 'applied migrations');
}

/**
 * Starts the given roles in this process: `npm start` runs both, `npm run start:api` and
 * `npm run start:worker` one each (workers scale out to other machines against the same
 * Redis and Postgres). Shuts down in two phases on SIGTERM/SIGINT: stop taking work, then drain.
 */
export async function boot(roles: Role[]): Promise<void> {
  const bootLog = createLogger(process.env.LOG_LEVEL || 'info');
  const { config, generatedToken } = await loadConfig(bootLog);
  const log = createLogger(config.logLevel);
  await prepareDatabase(config, log);

  let capture: CaptureServer | undefined;
  if (!config.smtpUrl && roles.includes('api')) {
    capture = await startCaptureServer({ dir: path.resolve(config.dataDir, 'mail'), port: config.captureSmtpPort, log });
    log.info({ port: capture.port }, 'no SMTP_URL: mail goes to the built-in capture server');
  }
  const c: Container = await createContainer(config, { log });

  const closers: (() => Promise<void>)[] = [];
  if (roles.includes('worker')) {
    const workers = startWorkers(c);
    closers.push(() => workers.close());
    log.info({ concurrency: config.workerConcurrency }, 'worker started');
  }
  if (roles.includes('api')) {
    const app = await buildApp(c);
    await app.listen({ port: config.port, host: config.host });
    closers.unshift(() => app.close());
    await checkIssueTemplate(c);
    if (!config.postalAddress) log.warn('POSTAL_ADDRESS is not set: every email footer should carry the sender\'s postal address (CAN-SPAM)');
    if (generatedToken) {
      // Printed, not logged: the log may be shipped elsewhere; the terminal is the operator's.
      process.stdout.write(
        `\n  Broadside is running at ${config.publicUrl}\n` +
          `  Editor API token (generated, kept in ${path.join(config.dataDir, 'secrets.json')}): ${config.apiToken}\n` +
          (capture ? `  Captured mail: ${config.publicUrl}/admin/mail (any user name, the token as password)\n` : '') +
          '\n',
      );
    }
  }

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down: no new work, finishing what is in flight');
    const force = setTimeout(() => {
      log.error('shutdown took too long; exiting');
      process.exit(1);
    }, 30_000);
    force.unref();
    for (const close of closers) await close();
    await c.close();
    await capture?.close();
    log.info('stopped');
    process.exit(0);
  };
  process.once('SIGTERM', () => void stop('SIGTERM'));
  process.once('SIGINT', () => void stop('SIGINT'));
}

/**
 * Compiles a tiny issue with the issue template at start, so an operator who customised
 * EMAILS_DIR learns of a broken template now rather than from the editor's first 400.
 */
async function checkIssueTemplate(c: Container): Promise<void> {
  try {
    await c.renderer.compile({ subject: 'Template check', preheader: '', markdown: 'Intro\n\n## Section\n\nText', slug: 'template-check' });
  } catch (err) {
    c.log.error({ err: (err as Error).message }, 'the issue template does not compile: creating or editing an issue will answer 400 until it is fixed');
  }
}
