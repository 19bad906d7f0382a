import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { afterAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { withDefaultUser } from '../../src/db/connection-url.js';
import { databaseUrl, dropTestDatabase } from '../support/db.js';

const name = `broadside_test_${Math.floor(Date.now() / 1000)}_${randomBytes(4).toString('hex')}`;
afterAll(() => dropTestDatabase(name));

/** Runs the real migrate command (`npm run migrate`'s entry point) as a separate process. */
function runMigrate(): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/bin/migrate.ts'], {
      env: { ...process.env, DATABASE_URL: databaseUrl(name), LOG_LEVEL: 'info', DATA_DIR: `/tmp/${name}` },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    child.on('close', (code) => resolve({ code, output }));
  });
}

describe('database preparation', () => {
  it('creates the missing database and migrates it once when two processes start at the same moment', async () => {
    const [a, b] = await Promise.all([runMigrate(), runMigrate()]);
    expect({ code: a.code, output: a.code ? a.output : '' }).toEqual({ code: 0, output: '' });
    expect({ code: b.code, output: b.code ? b.output : '' }).toEqual({ code: 0, output: '' });
    // Exactly one of them created the database.
    expect([a.output, b.output].filter((o) => o.includes('created database'))).toHaveLength(1);

    const client = new pg.Client({ connectionString: withDefaultUser(databaseUrl(name)) });
    await client.connect();
    try {
      const { rows } = await client.query('SELECT name FROM pgmigrations ORDER BY id');
      // Every migration file ran, once, in order.
      const files = readdirSync('migrations')
        .filter((f) => f.endsWith('.sql'))
        .sort()
        .map((f) => f.replace(/\.sql$/, ''));
      expect(files.length).toBeGreaterThanOrEqual(2);
      expect(rows.map((r) => r.name)).toEqual(files);
      const tables = await client.query(`SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1`);
      expect(tables.rows.map((r) => r.tablename)).toEqual(expect.arrayContaining(['pgmigrations', 'subscribers', 'suppressions', 'issues']));
    } finally {
      await client.end();
    }
    // A third start finds nothing to do.
    const again = await runMigrate();
    expect(again.code).toBe(0);
    expect(again.output).not.toContain('applied migrations');
  }, 60_000);
});
