// Creates the database if missing and applies pending migrations, then exits.
import { loadConfig, plainly, prepareDatabase } from '../boot.js';
import { createLogger } from '../log.js';

const log = createLogger(process.env.LOG_LEVEL || 'info');
await plainly(async () => {
  const { config } = await loadConfig();
  await prepareDatabase(config, log);
});
log.info('database is up to date');
