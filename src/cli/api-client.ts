import type { Readable } from 'node:stream';
import type { Connection } from './connection.js';
import { ApiError, ServiceUnreachable } from './errors.js';

type Method = 'GET' | 'POST' | 'PATCH' | 'DELETE';

export type RequestOptions = {
  /** A JSON body. */
  json?: unknown;
  /** A streamed body (read once), sent with `contentType`. */
  stream?: Readable;
  contentType?: string;
  /** The streamed body's length, when known: a service can refuse it as too large before it is sent. */
  contentLength?: number;
  /** No answer within this time counts as unreachable; 0 waits as long as it takes. Default 30 s. */
  timeoutMs?: number;
  /** Abandons the request (Ctrl-C while watching). */
  signal?: AbortSignal;
};

/** The editor API over HTTP with the bearer token. The token goes into the header and nowhere else. */
export class ApiClient {
  readonly base: string;
  readonly tokenSource: string;
  readonly #token: string;

  constructor(connection: Connection) {
    this.base = connection.base;
    this.tokenSource = connection.tokenSource;
    this.#token = connection.token;
  }

  /** The parsed JSON answer of a 2xx; throws ApiError for an error answer, ServiceUnreachable when nothing answers. */
  async request<T>(method: Method, route: string, opts: RequestOptions = {}): Promise<T> {
    const headers: Record<string, string> = { authorization: `Bearer ${this.#token}`, accept: 'application/json' };
    let body: string | Readable | undefined;
    if (opts.json !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(opts.json);
    } else if (opts.stream) {
      headers['content-type'] = opts.contentType ?? 'application/octet-stream';
      if (opts.contentLength !== undefined) headers['content-length'] = String(opts.contentLength);
      body = opts.stream;
    }
    const timeoutMs = opts.timeoutMs ?? 30_000;
    let res: Response;
    try {
      res = await fetch(`${this.base}${route}`, {
        method,
        headers,
        body,
        // Required by fetch for a streamed request body.
        ...(opts.stream ? { duplex: 'half' as const } : {}),
        signal: signalOf(timeoutMs, opts.signal),
      });
    } catch (err) {
      throw new ServiceUnreachable(this.base, reasonOf(err, timeoutMs));
    }
    const text = await res.text().catch(() => '');
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      parsed = undefined;
    }
    if (res.ok) {
      if (res.status !== 204 && parsed === undefined) {
        throw new ApiError(res.status, 'unexpected_answer', `${method} ${route} answered ${res.status} without JSON: is ${this.base} a Broadside service?`);
      }
      return parsed as T;
    }
    const error = (parsed as { error?: { code?: unknown; message?: unknown; details?: unknown } } | undefined)?.error;
    if (error && typeof error.code === 'string' && typeof error.message === 'string') {
      throw new ApiError(res.status, error.code, error.message, error.details);
    }
    throw new ApiError(res.status, `http_${res.status}`, `${method} ${route} answered ${res.status} ${res.statusText}: is ${this.base} a Broadside service?`);
  }
}

function signalOf(timeoutMs: number, given: AbortSignal | undefined): AbortSignal | undefined {
  const signals = [...(timeoutMs > 0 ? [AbortSignal.timeout(timeoutMs)] : []), ...(given ? [given] : [])];
  return signals.length > 1 ? AbortSignal.any(signals) : signals[0];
}

function reasonOf(err: unknown, timeoutMs: number): string {
  const e = err as { name?: string; message?: string; cause?: { code?: string; message?: string; errors?: { code?: string }[] } };
  if (e.name === 'AbortError') return 'abandoned';
  if (e.name === 'TimeoutError') return `no answer within ${Math.round(timeoutMs / 1000)} s`;
  const cause = e.cause;
  // Happy eyeballs (localhost → ::1 and 127.0.0.1) reports an AggregateError of both attempts.
  const code = cause?.code ?? cause?.errors?.find((x) => x.code)?.code;
  return code ?? cause?.message ?? e.message ?? 'unknown error';
}
