// The service's own roles, run in the foreground. The service is loaded only here, when one of
// these commands runs: the HTTP commands then start in a fraction of the second the full
// service (Fastify, BullMQ, MJML, pg) takes to load.
import type { Role } from '../boot.js';

/** Creates the database if missing and applies pending migrations (what every start does first). */
export async function migrateDatabase(): Promise<number> {
  const [{ loadConfig, plainly, prepareDatabase }, { createLogger }] = await Promise.all([import('../boot.js'), import('../log.js')]);
  const log = createLogger(process.env.LOG_LEVEL || 'info');
  await plainly(async () => {
    const { config } = await loadConfig();
    await prepareDatabase(config, log);
  });
  log.info('database is up to date');
  return 0;
}

/**
 * Runs the roles until SIGTERM or SIGINT; boot() owns the shutdown and exits the process itself.
 * Resolves once they are running.
 */
export async function serve(roles: Role[]): Promise<undefined> {
  const { boot } = await import('../boot.js');
  await boot(roles);
  return undefined;
}
