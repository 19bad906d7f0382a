import path from 'node:path';
import type { CaptureServer } from './capture/capture-server.js';
import { ConfigError, parseConfig, redactUrl, withDevSecrets, type AppConfig } from './config/index.js';
import { devSecretsFile } from './config/dev-secrets.js';
import { createContainer, type Container } from './container.js';
import { ensureDatabase } from './db/ensure-database.js';
import { migrate } from './db/migrate.js';
import { createLogger, type Logger } from './log.js';
import { startWorkerMetrics } from './metrics/metrics-server.js';
import { bannerText, type BannerFacts } from './startup/banner.js';
import { apiPorts, checkPorts, explainListenError, type PlannedPort } from './startup/ports.js';
import { explainPostgresError } from './startup/postgres-failure.js';
import { onEnter } from './startup/reprint-on-enter.js';
import { evictionWarning, explainRedisFailure, probeRedis } from './startup/redis-probe.js';
import { exitWithStartupError, StartupError } from './startup/startup-error.js';
import { startWorkers } from './worker/worker.js';

export type Role = 'api' | 'worker';

/**
 * Runs a start-up step. A failure already put in words (a StartupError: Postgres or Redis not
 * there or refusing, a port taken, a bad variable) is printed as those plain lines, without a
 * stack, and the process exits 1. Anything else is a bug and keeps its stack.
 */
export async function plainly<T>(step: () => Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (err) {
    if (err instanceof StartupError) exitWithStartupError(err);
    throw err;
  }
}

/** Reads and validates the environment; every problem at once in a StartupError. */
export async function loadConfig(): Promise<{ config: AppConfig; generatedToken: boolean }> {
  let parsed: ReturnType<typeof parseConfig>;
  try {
    parsed = parseConfig(process.env);
  } catch (err) {
    if (err instanceof ConfigError) throw new StartupError([`Cannot start: invalid configuration:`, ...err.problems.map((p) => `  - ${p}`)]);
    throw err;
  }
  try {
    return await withDevSecrets(parsed);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new StartupError([
      `Cannot start: the generated API token and secret cannot be kept in ${devSecretsFile(parsed.dataDir)} (${e.code ?? e.message}).`,
      `DATA_DIR=${parsed.dataDir}. Make it writable, or set API_TOKEN and SECRET.`,
    ]);
  }
}

/** Creates the database if missing and applies pending migrations (safe to run concurrently). */
export async function prepareDatabase(config: Pick<AppConfig, 'databaseUrl'>, log: Logger): Promise<void> {
  try {
    if (await ensureDatabase(config.databaseUrl)) log.info({ database: redactUrl(config.databaseUrl) }, 'created database');
    const applied = await migrate(config.databaseUrl, log);
    if (applied.length) log.info({ applied }, 'applied migrations');
  } catch (err) {
    throw explainPostgresError(err, config.databaseUrl) ?? err;
  }
}

/**
 * Redis answers (a StartupError naming REDIS_URL otherwise), and keeps BullMQ's keys: an evicting
 * maxmemory-policy is a warning, since the service runs, but may lose jobs under memory pressure.
 */
export async function checkRedis(config: AppConfig, log: Logger): Promise<void> {
  const probe = await probeRedis(config.redisUrl);
  if (!probe.ok) throw explainRedisFailure(config.redisUrl, probe.error);
  const warning = evictionWarning(probe.maxmemoryPolicy);
  if (warning) log.warn({ maxmemoryPolicy: probe.maxmemoryPolicy }, warning);
}

/** Listens with `listen`, turning a port that is taken or forbidden into a StartupError naming its variable. */
async function listening<T>(port: PlannedPort, listen: () => Promise<T>): Promise<T> {
  try {
    return await listen();
  } catch (err) {
    throw explainListenError(err, port) ?? err;
  }
}

/** Starts the given roles; a start-up failure ends the process with plain lines and status 1. */
export async function boot(roles: Role[]): Promise<void> {
  await plainly(() => startRoles(roles));
}

/**
 * Starts the given roles in this process: `npm start` runs both, `npm run start:api` and
 * `npm run start:worker` one each (workers scale out to other machines against the same
 * Redis and Postgres). Shuts down in two phases on SIGTERM/SIGINT: stop taking work, then drain.
 */
async function startRoles(roles: Role[]): Promise<void> {
  const { config, generatedToken } = await loadConfig();
  const log = createLogger(config.logLevel);
  // Checked before anything starts, in the order a newcomer meets them; each failure names the
  // variable to change.
  const ports = apiPorts(config);
  if (roles.includes('api')) await checkPorts(Object.values(ports));
  await prepareDatabase(config, log);
  await checkRedis(config, log);

  let capture: CaptureServer | undefined;
  if (ports.capture && roles.includes('api')) {
    const { startCaptureServer } = await import('./capture/capture-server.js');
    const port = ports.capture;
    capture = await listening(port, () => startCaptureServer({ dir: path.resolve(config.dataDir, 'mail'), port: port.port, log }));
    log.info({ port: capture.port }, 'no SMTP_URL: mail goes to the built-in capture server');
  }
  let c: Container;
  try {
    c = await createContainer(config, { log });
  } catch (err) {
    // Postgres or Redis went away since the checks above, an instant ago.
    await capture?.close();
    throw explainPostgresError(err, config.databaseUrl) ?? err;
  }

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
    await listening(ports.http, () => app.listen({ port: config.port, host: config.host }));
    closers.unshift(() => app.close());
    if (config.bounceSmtpPort !== undefined) {
      // Imported here like the capture server: a process without the listener never loads it.
      const { startBounceListener } = await import('./bounces/inbound/listener.js');
      const bounces = await listening(ports.bounces!, () => startBounceListener({ c, port: config.bounceSmtpPort!, host: config.host }));
      // Closed with the HTTP server, before the container: a report being stored finishes first.
      closers.unshift(() => bounces.close());
      log.info({ port: bounces.port, domain: config.bounceDomain ?? null }, 'bounce listener started');
    }
    await checkIssueTemplate(c);
    if (!config.postalAddress) log.warn("POSTAL_ADDRESS is not set: every email footer should carry the sender's postal address (CAN-SPAM)");
    // Printed, not logged, and last, so the log does not scroll it away: the log may be shipped
    // elsewhere, the terminal is the operator's. JSON logs with the operator's own API_TOKEN get
    // no banner (it would be the one line in the stream that is not JSON).
    if (generatedToken || process.stdout.isTTY) {
      const facts: BannerFacts = {
        running: true,
        publicUrlFollowsPort: !process.env.PUBLIC_URL,
        tokenGenerated: generatedToken,
        capturing: capture !== undefined,
      };
      // Enter shows it again, once the log has scrolled it away.
      facts.reprintOnEnter = onEnter(() => process.stdout.write(bannerText(config, facts)));
      // After every line logged so far (JSON lines to a pipe are written asynchronously).
      await new Promise<void>((resolve) => log.flush(() => resolve()));
      process.stdout.write(bannerText(config, facts));
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
