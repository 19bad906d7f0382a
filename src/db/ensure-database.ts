import pg from 'pg';
import { withDefaultUser } from './connection-url.js';

/**
 * Creates the database named in `databaseUrl` when it does not exist, connecting to the
 * server's `postgres` maintenance database to do so. Safe when several processes start at
 * once: losing the race to CREATE DATABASE is treated as success.
 */
export async function ensureDatabase(databaseUrl: string): Promise<boolean> {
  const url = new URL(withDefaultUser(databaseUrl));
  const name = decodeURIComponent(url.pathname.replace(/^\//, ''));
  if (!name) throw new Error('DATABASE_URL must name a database');
  const client = await connectToMaintenanceDatabase(url);
  try {
    const found = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (found.rowCount) return false;
    try {
      await client.query(`CREATE DATABASE ${quoteIdent(name)}`);
      return true;
    } catch (err) {
      const code = (err as { code?: string }).code;
      // 42P04 duplicate_database; 23505 when two CREATE DATABASE race on pg_database's index.
      if (code === '42P04' || code === '23505') return false;
      throw err;
    }
  } finally {
    await client.end();
  }
}

/**
 * A client on the server's `postgres` database, or `template1` where an administrator dropped
 * `postgres` (both exist on a fresh cluster). Bounded: a host that drops packets fails in 10 s
 * rather than after the operating system's minutes-long connect timeout.
 */
export async function connectToMaintenanceDatabase(url: URL): Promise<pg.Client> {
  for (const name of ['postgres', 'template1']) {
    url.pathname = `/${name}`;
    const client = new pg.Client({ connectionString: url.toString(), connectionTimeoutMillis: 10_000 });
    try {
      await client.connect();
      return client;
    } catch (err) {
      await client.end().catch(() => undefined);
      // 3D000 invalid_catalog_name: that database does not exist; try the next.
      if ((err as { code?: string }).code !== '3D000' || name === 'template1') throw err;
    }
  }
  throw new Error('unreachable');
}

export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}
