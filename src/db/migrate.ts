import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runner } from 'node-pg-migrate';
import type { Logger } from '../log.js';
import { withDefaultUser } from './connection-url.js';

export const migrationsDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../migrations');
export const migrationsTable = 'pgmigrations';

/**
 * Applies pending migrations from `migrations/`. node-pg-migrate holds a Postgres advisory lock
 * for the run ('wait' mode: a second process blocks, then finds nothing left to do) and wraps
 * all pending migrations in one transaction.
 */
export async function migrate(databaseUrl: string, log?: Logger): Promise<string[]> {
  const applied = await runner({
    databaseUrl: withDefaultUser(databaseUrl),
    dir: migrationsDir,
    migrationsTable,
    direction: 'up',
    singleTransaction: true,
    checkOrder: true,
    advisoryLockMode: 'wait',
    logger: {
      debug: () => {},
      info: (msg: string) => log?.debug({ migration: msg }, 'migration'),
      warn: (msg: string) => log?.warn(msg),
      error: (msg: string) => log?.error(msg),
    },
  });
  return applied.map((m) => m.name);
}
