import type { Pool } from '../../src/db/pool.js';

/**
 * Empties tables between tests (`TRUNCATE … RESTART IDENTITY CASCADE`). TRUNCATE locks its tables
 * one after another, so a query of the app's still running across two of them (a request's
 * background work, a look at the archive) can deadlock with it; Postgres then rolls one back,
 * and the TRUNCATE is simply run again.
 */
export async function truncate(pool: Pool, tables: string): Promise<void> {
  for (let tries = 1; ; tries++) {
    try {
      await pool.query(`TRUNCATE ${tables} RESTART IDENTITY CASCADE`);
      return;
    } catch (err) {
      if ((err as { code?: string }).code !== '40P01' || tries >= 5) throw err;
    }
  }
}
