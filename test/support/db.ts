// Databases on the shared Postgres (TEST_DATABASE_SERVER_URL) for one test file or one benchmark
// run. No jest import here: the benchmarks use it too.
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { withDefaultUser } from '../../src/db/connection-url.js';
import { ensureDatabase, quoteIdent } from '../../src/db/ensure-database.js';
import { migrate } from '../../src/db/migrate.js';

export const TEST_SERVER_URL = process.env.TEST_DATABASE_SERVER_URL ?? 'postgres://127.0.0.1:5432';

export function databaseUrl(name: string): string {
  return `${TEST_SERVER_URL.replace(/\/+$/, '')}/${name}`;
}

export async function admin<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: withDefaultUser(databaseUrl('postgres')) });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

const stamped = (prefix: string) => `${prefix}_${Math.floor(Date.now() / 1000)}_${randomBytes(4).toString('hex')}`;

/** A fresh database for one test file, copied from the migrated template (fast, isolated). */
export async function createTestDatabase(): Promise<string> {
  const template = process.env.BROADSIDE_TEST_TEMPLATE;
  if (!template) {
    throw new Error(
      'BROADSIDE_TEST_TEMPLATE is unset: the migrated template is built by the global setup of the jest project `integration`; ' +
        'a test file that needs Postgres does not belong in the `unit` list of jest.config.js',
    );
  }
  const name = stamped('broadside_test');
  await admin((c) => c.query(`CREATE DATABASE ${quoteIdent(name)} TEMPLATE ${quoteIdent(template)}`));
  return name;
}

/**
 * A fresh database named `<prefix>_<time>_<random>`, created and migrated by the service's own
 * code (ensureDatabase, migrate): for a run outside jest, which has no template (the benchmarks).
 */
export async function createMigratedDatabase(prefix: string): Promise<string> {
  const name = stamped(prefix);
  await ensureDatabase(databaseUrl(name));
  await migrate(databaseUrl(name));
  return name;
}

export async function dropTestDatabase(name: string): Promise<void> {
  await admin((c) => c.query(`DROP DATABASE IF EXISTS ${quoteIdent(name)} WITH (FORCE)`));
}
