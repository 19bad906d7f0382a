import path from 'node:path';
import type { CaptureServer } from './capture/capture-server.js';
import { ConfigError, parseConfig, redactUrl, withDevSecrets, type AppConfig } from './config/index.js';
import { createContainer, type Container } from './container.js';
import { ensureDatabase } from './db/ensure-database.js';
import { migrate } from './db/migrate.js';
import { createLogger, type Logger } from './log.js';
import { startWorkerMetrics } from './metrics/metrics-server.js';
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
export async function prepareDatabase(config: Pick<AppConfig, 'databaseUrl'>, log: Logger): Promise<void> {
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
    const { startCaptureServer } = await import('./capture/capture-server.js');
    capture = await startCaptureServer({ dir: path.resolve(config.dataDir, 'mail'), port: config.captureSmtpPort, log });
    log.info({ port: capture.port }, 'no SMTP_URL: mail goes to the built-in capture server');
  }
  const c: Container = await createContainer(config, { log });

  const closers: (() => Promise<void>)[] = [];
  // In this order: HTTP stops taking connections and its requests in flight finish; the workers
  // take no new jobs and finish theirs (their status writes flushed); then Postgres and Redis
  // close; the capture server goes last, as a worker in flight may still be submitting to it.
  let stopping = false;
  const stop = async (signal: NodeJS.Signals) => {
    if (stopping) {
      // A second Ctrl-C or SIGTERM must not cut the drain short: the bound below ends it.
      log.warn({ signal }, 'already shutting down: still finishing what is in flight');
      return;
    }
    stopping = true;
    const timeoutSeconds = config.shutdownTimeoutSeconds;
    log.info({ signal, timeoutSeconds }, 'shutting down: no new work, finishing what is in flight');
    const force = setTimeout(() => {
      log.error({ timeoutSeconds }, 'shutdown took longer than SHUTDOWN_TIMEOUT_SECONDS; exiting with work still in flight');
      process.exit(1);
    }, timeoutSeconds * 1000);
    force.unref();
    // What has started by now (a signal may come while the API is still starting: the exit
    // below ends whatever starts after it).
    const steps = [...closers, () => c.close(), async () => capture?.close()];
    let failed = false;
    for (const step of steps) {
      try {
        await step();
      } catch (err) {
        // Keep going: what is left (the pools above all) should still close.
        failed = true;
        log.error({ err }, 'shutdown step failed');
      }
    }
    log.info({ clean: !failed }, 'stopped');
    process.exit(failed ? 1 : 0);
  };
  // Handled from here on, before the workers and the listener start. (A signal during the
  // migrations above ends the process at once; they run in a transaction.)
  process.on('SIGTERM', (signal) => void stop(signal));
  process.on('SIGINT', (signal) => void stop(signal));
  if (roles.includes('worker')) {
    const workers = startWorkers(c);
    closers.push(() => workers.close());
    log.info({ concurrency: config.workerConcurrency }, 'worker started');
    // A worker on its own serves GET /metrics on METRICS_PORT; with the API, the API's covers it.
    if (!roles.includes('api') && config.metricsPort !== 0) {
      const metrics = await startWorkerMetrics(c.metrics, { port: config.metricsPort, host: config.host, log });
      // Closed after the workers have drained, so a scrape during shutdown still answers.
      if (metrics) closers.push(() => metrics.close());
    }
  }
  if (roles.includes('api')) {
    // Imported here so a worker-only process never loads the HTTP side (Fastify, the routes,
    // Markdown and HTML sanitising): workers stay small.
    const { buildApp } = await import('./api/app.js');
    await c.readerMail();
    const app = await buildApp(c);
    await app.listen({ port: config.port, host: config.host });
    closers.unshift(() => app.close());
    if (config.bounceSmtpPort !== undefined) {
      // Imported here like the capture server: a process without the listener never loads it.
      const { startBounceListener } = await import('./bounces/listener.js');
      const bounces = await startBounceListener({ c, port: config.bounceSmtpPort, host: config.host });
      // Closed with the HTTP server, before the container: a report being stored finishes first.
      closers.unshift(() => bounces.close());
      log.info({ port: bounces.port, domain: config.bounceDomain ?? null }, 'bounce listener started');
    }
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
