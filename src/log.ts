import { pino, type DestinationStream, type Logger, type LoggerOptions } from 'pino';
import { prettyFactory } from 'pino-pretty';

export type { Logger };

// Path segments after these prefixes are reader tokens (and preview links, which open a draft):
// never written to a log.
const TOKEN_PATH = /^(\/(?:confirm|unsubscribe|manage|data|preview)\/)[^/?#]+/;
// Query parameters whose value is a credential: reader tokens (`token`, `t`), and whatever a
// client sends as `access_token`, `api_key`, `secret`… by habit, though we never read it there.
const SECRET_PARAM = /^(?:t|key|sig|auth)$|(?:token|secret|password|passwd|apikey|api_key|signature)$/i;
// Query values that are (part of) a reader's address: the editor API's `email` filter, or any
// value with an @ in it, spelled out or %-escaped.
const ADDRESS_VALUE = /@|%40/i;

function paramName(raw: string): string {
  try {
    return decodeURIComponent(raw.replace(/\+/g, ' '));
  } catch {
    return raw;
  }
}

export function maskUrl(url: string): string {
  const path = url.replace(TOKEN_PATH, '$1…');
  const q = path.indexOf('?');
  if (q === -1) return path;
  const query = path
    .slice(q + 1)
    .split('&')
    .map((pair) => {
      const eq = pair.indexOf('=');
      if (eq === -1) return ADDRESS_VALUE.test(pair) ? '…' : pair;
      const name = paramName(pair.slice(0, eq));
      const hidden = SECRET_PARAM.test(name) || name.toLowerCase() === 'email' || ADDRESS_VALUE.test(pair.slice(eq + 1));
      return hidden ? `${pair.slice(0, eq)}=…` : pair;
    });
  return `${path.slice(0, q)}?${query.join('&')}`;
}

/** `jane.doe@example.com` → `j***@example.com`: enough to tell readers apart in a log, no more. */
export function maskEmail(email: string): string {
  const at = email.lastIndexOf('@');
  if (at < 1) return '***';
  return `${email[0]}***${email.slice(at)}`;
}

// An address inside free text (an SMTP reply, an error message, a stack): a local part and a
// dotted domain, Unicode letters included in both.
const ADDRESS_IN_TEXT = /[\p{L}\p{M}\p{N}.!#$%&'*+/=?^_`{|}~-]+@(?:[\p{L}\p{M}\p{N}](?:[\p{L}\p{M}\p{N}-]*[\p{L}\p{M}\p{N}])?\.)+[\p{L}\p{M}\p{N}-]{2,63}/gu;

/** Masks every address in a piece of text: `550 <jane@example.com> unknown` → `550 <j***@example.com> unknown`. */
export function maskEmailsIn(text: string): string {
  return text.includes('@') ? text.replace(ADDRESS_IN_TEXT, maskEmail) : text;
}

function maskStrings(value: unknown, depth: number): unknown {
  if (typeof value === 'string') return maskEmailsIn(value);
  if (depth > 20 || value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((v) => maskStrings(v, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = maskStrings(v, depth + 1);
  return out;
}

/** pino's level number for `info`: lines at this level and above never show a whole address. */
const INFO = 30;
const LEVEL_FIELD = /^\{"level":(\d+)/;

/**
 * The last step before a line is written: at info and above, every reader address anywhere in
 * it (a field, the message, an SMTP reply quoted in an error, a stack) is masked, so a log call
 * that forgets maskEmail leaks nothing. Debug and trace lines are left whole, for an operator
 * chasing one reader's problem. Lines without an @ (nearly all) cost one `includes`.
 */
export function maskAddressesInLine(line: string): string {
  if (!line.includes('@')) return line;
  const level = LEVEL_FIELD.exec(line);
  if (level && Number(level[1]) < INFO) return line;
  try {
    return `${JSON.stringify(maskStrings(JSON.parse(line), 0))}\n`;
  } catch {
    // Not one JSON object (never, from pino): mask the text as it is.
    return maskEmailsIn(line);
  }
}

/** Fields whose value is a credential, wherever they appear in a line. */
const SECRET_FIELDS = new Set(['password', 'apiToken', 'secret', 'authorization', 'cookie']);
/** One of them as a JSON key (or, rarely, inside an escaped string: then nothing changes). */
const SECRET_FIELD_IN_LINE = /"(?:password|apiToken|secret|authorization|cookie)":/;
/** The same with its value, for text that is not one JSON object: a string, or a bare value. */
const SECRET_FIELD_WITH_VALUE = /("(?:password|apiToken|secret|authorization|cookie)":)(?:"(?:[^"\\]|\\.)*"|[^,}\]]*)/g;
const CENSOR = '[redacted]';

function censorSecrets(value: unknown, depth: number): unknown {
  if (depth > 20 || value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((v) => censorSecrets(v, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = SECRET_FIELDS.has(k) ? CENSOR : censorSecrets(v, depth + 1);
  return out;
}

/**
 * At every level, the value of any field named password, apiToken, secret, authorization or
 * cookie (an SMTP login, the config, request headers), at any depth, becomes "[redacted]". Done
 * on the line as written rather than with pino's wildcard redaction paths, which cost about as
 * much as the rest of the line: lines without such a field (all of them, today) cost one regular
 * expression test.
 */
export function censorSecretsInLine(line: string): string {
  if (!SECRET_FIELD_IN_LINE.test(line)) return line;
  try {
    return `${JSON.stringify(censorSecrets(JSON.parse(line), 0))}\n`;
  } catch {
    // Not one JSON object (never, from pino): censor the values as the text has them.
    return line.replace(SECRET_FIELD_WITH_VALUE, `$1"${CENSOR}"`);
  }
}

/** What every line goes through before it is written: secrets censored, then addresses masked. */
export function protectLine(line: string): string {
  return maskAddressesInLine(censorSecretsInLine(line));
}

/**
 * The service's logger settings (where the lines go is createLogger's business): the request
 * serializer that masks reader tokens, and, on every line, the secret censor and address mask.
 */
export function loggerOptions(level: string): LoggerOptions {
  return {
    level,
    serializers: {
      req: (req: { id?: string; method?: string; url?: string; ip?: string }) => ({
        id: req.id,
        method: req.method,
        url: req.url ? maskUrl(req.url) : undefined,
      }),
    },
    hooks: { streamWrite: protectLine },
  };
}

type Entry = Record<string, unknown>;

/**
 * The access line ("request completed": method, URL, status, time; see api/access-log.ts) as a
 * person at a terminal reads it: `GET /path 200 in 3 ms`. Other entries are left as they are.
 */
export function requestLine(entry: Entry): Entry {
  if (entry.msg !== 'request completed' || !entry.req) return entry;
  const req = entry.req as { method?: string; url?: string };
  const status = (entry.res as { statusCode?: number } | undefined)?.statusCode;
  const ms = typeof entry.responseTime === 'number' ? ` in ${Math.round(entry.responseTime)} ms` : '';
  return { ...entry, msg: `${req.method} ${req.url} ${status ?? ''}${ms}` };
}

/**
 * Lines for a person at a terminal: pino-pretty, one line per entry (its fields inline), the
 * access line as `GET /path 200 in 3 ms`. Written here, synchronously, rather than through pino's worker-thread
 * transport: the start-up banner is written straight to stdout and must come after the lines
 * logged before it, not be overtaken by them.
 */
export function prettyStream(out: { write(text: string): unknown } = process.stdout): DestinationStream {
  const prettify = prettyFactory({
    colorize: true,
    singleLine: true,
    translateTime: 'SYS:HH:MM:ss.l',
    // Request ids, and what the request line above already says.
    ignore: 'pid,hostname,reqId,req,res,responseTime',
  });
  return {
    write(line: string) {
      let entry: Entry;
      try {
        entry = JSON.parse(line) as Entry;
      } catch {
        out.write(line);
        return;
      }
      out.write(prettify(requestLine(entry)));
    },
  };
}

/**
 * The service's logger: pretty lines when stdout is a terminal (a person watching), JSON lines
 * otherwise (a file, a pipe, Docker's log driver).
 */
export function createLogger(level: string): Logger {
  return process.stdout.isTTY === true ? pino(loggerOptions(level), prettyStream()) : pino(loggerOptions(level));
}

/** What code that only writes lines needs: the service's logger or a request's (`request.log`). */
export type LogLines = Pick<Logger, 'debug' | 'info' | 'warn' | 'error'>;
