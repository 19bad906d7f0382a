import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { withDefaultUser } from '../../src/db/connection-url.js';
import { quoteIdent } from '../../src/db/ensure-database.js';

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

/** A fresh database for one test file, copied from the migrated template (fast, isolated). */
export async function createTestDatabase(): Promise<string> {
  const template = process.env.BROADSIDE_TEST_TEMPLATE;
  if (!template) {
    throw new Error('BROADSIDE_TEST_TEMPLATE is unset: the migrated template is built by the global setup of the jest project `integration`; '
      + 'a test file that needs Postgres does not belong in the `unit` list of jest.config.js');
  }
  const name = `broadside_test_${Math.floor(Date.now() / 1000)}_${randomBytes(4).toString('hex')}`;
  await admin((c) => c.query(`CREATE DATABASE ${quoteIdent(name)} TEMPLATE ${quoteIdent(template)}`));
  return name;
}

export async function dropTestDatabase(name: string): Promise<void> {
  await admin((c) => c.query(`DROP DATABASE IF EXISTS ${quoteIdent(name)} WITH (FORCE)`));
}
