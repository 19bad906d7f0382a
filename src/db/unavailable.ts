// Whether an error from `pg` means "Postgres cannot be reached right now" (a restart, a failover,
// a proxy restarting, a terminated backend) rather than "this statement is wrong". The first kind
// is waited out: the work is tried again when Postgres is back, nobody's message is failed and no
// process exits. The second kind is a bug or bad data and fails as before.

/** SQLSTATEs of a lost or refused connection. */
const SQLSTATES = new Set([
  '57P01', // admin_shutdown: pg_terminate_backend, a fast or immediate shutdown
  '57P02', // crash_shutdown: another backend crashed, every session is ended
  '57P03', // cannot_connect_now: starting up, in recovery, shutting down
  '53300', // too_many_connections: momentary, e.g. while a restart's old sessions go
]);

/** Socket errors of the network path to Postgres. */
const SOCKET_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN']);

/** pg's own messages for a connection that ended or never was (they carry no code). */
const PG_MESSAGES =
  /^(Connection terminated|Client has encountered a connection error and is not queryable|Client was closed and is not queryable|timeout exceeded when trying to connect|Query read timeout)/;

export function isDatabaseUnavailable(err: unknown): boolean {
  for (let e = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && (code.startsWith('08') || SQLSTATES.has(code) || SOCKET_CODES.has(code))) return true;
    if (PG_MESSAGES.test(e.message)) return true;
    // Several addresses tried (localhost: ::1 and 127.0.0.1), each refused.
    if (e instanceof AggregateError && e.errors.some((x) => isDatabaseUnavailable(x))) return true;
  }
  return false;
}

/** A short description of a connection error for a log line (pg attaches the whole client to some). */
export function describeDatabaseError(err: unknown): { message: string; code?: string } {
  const e = err as { message?: unknown; code?: unknown };
  return { message: typeof e?.message === 'string' ? e.message : String(err), ...(typeof e?.code === 'string' ? { code: e.code } : {}) };
}
