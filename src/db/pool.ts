import pg from 'pg';
import { withDefaultUser } from './connection-url.js';

// bigint columns (ids, counts) come back as strings by default; our ids stay below 2^53.
pg.types.setTypeParser(pg.types.builtins.INT8, (v) => Number(v));

export type Pool = pg.Pool;

export function createPool(databaseUrl: string, max = 10): pg.Pool {
  return new pg.Pool({ connectionString: withDefaultUser(databaseUrl), max, application_name: 'broadside' });
}
