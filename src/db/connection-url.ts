import { userInfo } from 'node:os';

/**
 * Like libpq, a DATABASE_URL without a user name connects as PGUSER or, failing that, the
 * operating-system user (node-postgres would otherwise send none when $USER is unset).
 */
export function withDefaultUser(databaseUrl: string): string {
  const url = new URL(databaseUrl);
  if (!url.username) url.username = process.env.PGUSER || userInfo().username;
  return url.toString();
}
