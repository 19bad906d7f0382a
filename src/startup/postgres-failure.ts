// Postgres errors at start-up (connecting, creating the database, migrating), put in words that
// name DATABASE_URL (without its password) and say what to try. pg's own errors name neither.
import { userInfo } from 'node:os';
import { redactUrl } from '../config/index.js';
import { networkCode, networkReason, StartupError, UNREACHABLE } from './startup-error.js';

/** Where DATABASE_URL points, as a person would check it. */
export type PostgresTarget = {
  /** `host:port` (or the socket directory given as `?host=`). */
  server: string;
  user: string;
  /** DATABASE_URL names no user: libpq's rule (PGUSER, else the OS user) chose `user`. */
  userImplied: boolean;
  database: string;
  /** DATABASE_URL as given, its password replaced by ***. */
  shown: string;
};

export function postgresTarget(databaseUrl: string): PostgresTarget {
  const url = new URL(databaseUrl);
  const socket = url.searchParams.get('host');
  const user = decodeURIComponent(url.username) || process.env.PGUSER || userInfo().username;
  return {
    server: socket ?? `${url.hostname || 'localhost'}:${url.port || '5432'}`,
    user,
    userImplied: !url.username,
    database: decodeURIComponent(url.pathname.replace(/^\//, '')),
    shown: redactUrl(databaseUrl),
  };
}

type PgError = Error & { code?: string; severity?: string };

/** pg's errors from the server carry a SQLSTATE and a severity; network errors only a code. */
const isServerError = (err: PgError): boolean => typeof err.severity === 'string' && typeof err.code === 'string';

/**
 * The start-up failure for a Postgres error, or undefined when `err` is not one we can explain
 * (a bug: it keeps its stack).
 */
export function explainPostgresError(err: unknown, databaseUrl: string): StartupError | undefined {
  if (!(err instanceof Error)) return undefined;
  const e = err as PgError;
  const t = postgresTarget(databaseUrl);
  const setting = `DATABASE_URL=${t.shown}`;
  const code = networkCode(e);
  if (!isServerError(e) && code && UNREACHABLE.has(code)) {
    return new StartupError([
      `Cannot start: no Postgres answers at ${t.server} (${networkReason(code, e.message)}).`,
      `${setting}. Start Postgres (the README's quick start says how), or point DATABASE_URL at where it runs.`,
    ]);
  }
  if (!isServerError(e) && /timeout|terminated unexpectedly/i.test(e.message)) {
    return new StartupError([
      `Cannot start: Postgres at ${t.server} did not answer (${e.message}).`,
      `${setting}. Check that Postgres runs there and that nothing (a firewall) drops the connection.`,
    ]);
  }
  // pg asks for a password the URL does not have (SCRAM or MD5 authentication).
  if (/client password must be a string|password authentication failed|no password was provided/i.test(e.message) || e.code === '28P01') {
    const given = databaseUrl.includes('@') && /\/\/[^/@]*:[^@/]*@/.test(databaseUrl);
    return new StartupError([
      `Cannot start: Postgres at ${t.server} refused role "${t.user}": ${given ? 'wrong password' : 'it wants a password and DATABASE_URL has none'}.`,
      `${setting}. Put the role's password in DATABASE_URL (postgres://${t.user}:PASSWORD@${t.server}/${t.database || 'broadside'}).`,
    ]);
  }
  if (e.code === '28000' && /role .* does not exist/i.test(e.message)) {
    return new StartupError([
      `Cannot start: Postgres at ${t.server} has no role "${t.user}"${t.userImplied ? " (DATABASE_URL names no user, so the OS user's name is used)" : ''}.`,
      `${setting}. Create the role (sudo -u postgres createuser --createdb --pwprompt ${t.user}, then put its password in DATABASE_URL), or name a role that exists in DATABASE_URL.`,
    ]);
  }
  if (e.code === '28000') {
    // "no pg_hba.conf entry for host …": the server's access rules turn us away.
    return new StartupError([
      `Cannot start: Postgres at ${t.server} refused role "${t.user}": ${e.message}.`,
      `${setting}. Allow this role and host in pg_hba.conf, or use a role and host it allows.`,
    ]);
  }
  if (e.code === '42501' && /create database/i.test(e.message)) {
    return new StartupError([
      `Cannot start: database "${t.database}" does not exist, and role "${t.user}" may not create it (${e.message}).`,
      `${setting}. Create it once as a superuser (sudo -u postgres createdb -O ${t.user} ${t.database}), or let the role create databases (ALTER ROLE ${t.user} CREATEDB).`,
    ]);
  }
  if (e.code === '3D000') {
    return new StartupError([
      `Cannot start: Postgres at ${t.server} has no database "${t.database}" (${e.message}).`,
      `${setting}. Create it (sudo -u postgres createdb -O ${t.user} ${t.database}), or name one that exists in DATABASE_URL.`,
    ]);
  }
  if (isServerError(e)) {
    // Anything else the server said (too many connections, starting up, a migration refused):
    // its own words, which name the problem, with where we were talking to.
    return new StartupError([`Cannot start: Postgres at ${t.server} answered "${e.message}" (SQLSTATE ${e.code}).`, `${setting}.`]);
  }
  return undefined;
}
