/**
 * A start-up failure already put in words for the person at the terminal: what is wrong (first
 * line) and what to try, naming the variable that sets it. `boot` prints the lines as they are,
 * never a stack, and exits 1. Secrets never reach these lines: URLs are shown redacted.
 */
export class StartupError extends Error {
  constructor(readonly lines: string[]) {
    super(lines.join('\n'));
    this.name = 'StartupError';
  }
}

/** Writes a start-up failure to stderr and ends the process with status 1. */
export function exitWithStartupError(err: StartupError): never {
  // stderr on a terminal or a pipe is written synchronously on Linux and macOS, so nothing is
  // lost by exiting straight after.
  process.stderr.write(`${err.lines.join('\n')}\n`);
  process.exit(1);
}

/** The error code of a network failure, also when Node tried several addresses (AggregateError). */
export function networkCode(err: unknown): string | undefined {
  const e = err as { code?: unknown; originalCode?: unknown; errors?: { code?: unknown }[] };
  // nodemailer files socket errors under its own ESOCKET and keeps the system's code aside.
  if (typeof e?.originalCode === 'string') return e.originalCode;
  if (typeof e?.code === 'string') return e.code;
  const inner = e?.errors?.find((x) => typeof x?.code === 'string');
  return inner?.code as string | undefined;
}

/** A network error code in a few words. */
export function networkReason(code: string | undefined, fallback: string): string {
  switch (code) {
    case 'ECONNREFUSED':
      return 'connection refused';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'unknown host';
    case 'ETIMEDOUT':
      return 'no answer (timed out)';
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return 'host unreachable';
    case 'ECONNRESET':
      return 'connection reset';
    case 'ENOENT':
      return 'no socket there';
    default:
      return fallback;
  }
}

/** Network failures: the server is not there (as opposed to there and refusing us). */
export const UNREACHABLE = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNRESET', 'ENOENT']);
