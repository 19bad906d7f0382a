import { pino, type Logger, type LoggerOptions } from 'pino';

export type { Logger };

// Path segments after these prefixes are reader tokens: never written to a log.
const TOKEN_PATH = /^(\/(?:confirm|unsubscribe|manage)\/)[^/?#]+/;

export function maskUrl(url: string): string {
  return url.replace(TOKEN_PATH, '$1…').replace(/([?&](?:token|t)=)[^&#]*/g, '$1…');
}

/** `jane.doe@example.com` → `j***@example.com`: enough to tell readers apart in a log, no more. */
export function maskEmail(email: string): string {
  const at = email.lastIndexOf('@');
  if (at < 1) return '***';
  return `${email[0]}***${email.slice(at)}`;
}

export function loggerOptions(level: string): LoggerOptions {
  return {
    level,
    redact: {
      paths: ['req.headers.authorization', 'req.headers.cookie', 'headers.authorization', '*.password', '*.apiToken', '*.secret'],
      censor: '[redacted]',
    },
    serializers: {
      req: (req: { id?: string; method?: string; url?: string; ip?: string }) => ({
        id: req.id,
        method: req.method,
        url: req.url ? maskUrl(req.url) : undefined,
      }),
    },
    // Pretty output only for a person at a terminal; JSON lines everywhere else.
    ...(process.stdout.isTTY ? { transport: { target: 'pino-pretty', options: { colorize: true } } } : {}),
  };
}

export function createLogger(level: string): Logger {
  return pino(loggerOptions(level));
}
