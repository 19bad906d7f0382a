// Builds the migrated template database that every integration test file copies (CREATE
// DATABASE … TEMPLATE): the global setup of the jest project `integration` (see jest.config.js).
// Plain JavaScript: Jest loads global setup outside its module mapper, so it cannot import our
// TypeScript sources; it uses the same migration library and folder the service does.
// Several runs may share one Postgres (CI beside a developer's run): each run has its own
// template, named in BROADSIDE_TEST_TEMPLATE for the test workers, and drops it at the end.
import { randomBytes } from 'node:crypto';
import { userInfo } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runner } from 'node-pg-migrate';
import pg from 'pg';

const server = process.env.TEST_DATABASE_SERVER_URL ?? 'postgres://127.0.0.1:5432';
const STALE_SECONDS = 6 * 3600;

export function testDatabaseUrl(db) {
  const u = new URL(`${server.replace(/\/+$/, '')}/${db}`);
  if (!u.username) u.username = process.env.PGUSER || userInfo().username;
  return u.toString();
}

export async function withAdmin(fn) {
  const client = new pg.Client({ connectionString: testDatabaseUrl('postgres') });
  try {
    await client.connect();
  } catch (err) {
    throw new Error(
      `the integration tests need Postgres at ${server} (TEST_DATABASE_SERVER_URL): ${err.message}; npm run test:unit runs the tests that need no service`,
    );
  }
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

export default async function globalSetup() {
  const now = Math.floor(Date.now() / 1000);
  const template = `broadside_tpl_${now}_${randomBytes(3).toString('hex')}`;
  await withAdmin(async (client) => {
    // Leftovers of runs that were killed (names carry their creation time).
    const { rows } = await client.query(`SELECT datname FROM pg_database WHERE datname ~ '^broadside_(tpl|test)_[0-9]+_'`);
    for (const { datname } of rows) {
      if (now - Number(datname.split('_')[2]) > STALE_SECONDS) await client.query(`DROP DATABASE IF EXISTS "${datname}" WITH (FORCE)`);
    }
    await client.query(`CREATE DATABASE "${template}"`);
  });
  await runner({
    databaseUrl: testDatabaseUrl(template),
    dir: path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../migrations'),
    migrationsTable: 'pgmigrations',
    direction: 'up',
    singleTransaction: true,
    log: () => {},
  });
  process.env.BROADSIDE_TEST_TEMPLATE = template;
}
