// The app's one way to the server: the same documented /api routes a script uses, with the
// session cookie (sent by the browser) and, on unsafe requests, the session's CSRF token.

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
  }
}

/** No answer at all: the server is down or the network is gone. */
export const OFFLINE = 'offline';

let csrfToken: string | undefined;
let onSignedOut: () => void = () => {};

export function setCsrfToken(token: string | undefined): void {
  csrfToken = token;
}

/** Called when the server says the session is over (expired, or signed out in another tab). */
export function whenSignedOut(fn: () => void): void {
  onSignedOut = fn;
}

export type Answer<T> = { body: T; headers: Headers; status: number };

export async function request<T>(
  method: string,
  path: string,
  opts: { body?: unknown; raw?: Blob; headers?: Record<string, string> } = {},
): Promise<Answer<T>> {
  const headers: Record<string, string> = { accept: 'application/json', ...opts.headers };
  if (opts.body !== undefined) headers['content-type'] = 'application/json';
  if (opts.raw) headers['content-type'] = opts.raw.type || 'application/octet-stream';
  if (method !== 'GET' && method !== 'HEAD' && csrfToken) headers['x-csrf-token'] = csrfToken;
  let res: Response;
  try {
    const body = opts.raw ?? (opts.body === undefined ? undefined : JSON.stringify(opts.body));
    res = await fetch(path, { method, headers, credentials: 'same-origin', body });
  } catch {
    throw new ApiError(0, OFFLINE, 'The server cannot be reached. Check your connection; the editor tries again by itself.');
  }
  const text = await res.text();
  let body: unknown = null;
  if (text && (res.headers.get('content-type') ?? '').includes('json')) {
    try {
      body = JSON.parse(text);
    } catch {
      body = null;
    }
  }
  if (!res.ok) {
    const err = (body as { error?: { code?: string; message?: string; details?: unknown } } | null)?.error;
    if (res.status === 401 && path !== '/api/session') onSignedOut();
    throw new ApiError(res.status, err?.code ?? `http_${res.status}`, err?.message ?? `The server answered ${res.status}.`, err?.details);
  }
  return { body: body as T, headers: res.headers, status: res.status };
}

export const get = async <T>(path: string) => (await request<T>('GET', path)).body;

/**
 * POSTs a file as the raw body with XMLHttpRequest, whose upload events (unlike fetch's) say how
 * much of it has gone: `onProgress(sent, total)` as it goes. The answer as `request` gives it.
 */
export function upload<T>(path: string, file: Blob, onProgress: (sent: number, total: number) => void): Promise<T> {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', path);
    xhr.withCredentials = true;
    xhr.setRequestHeader('accept', 'application/json');
    xhr.setRequestHeader('content-type', file.type || 'application/octet-stream');
    if (csrfToken) xhr.setRequestHeader('x-csrf-token', csrfToken);
    // Listeners on xhr.upload before send(), or the browser sends no upload events.
    xhr.upload.addEventListener('progress', (e) => onProgress(e.loaded, e.lengthComputable ? e.total : file.size));
    xhr.addEventListener('error', () =>
      reject(new ApiError(0, OFFLINE, 'The server cannot be reached. Check your connection; the editor tries again by itself.')),
    );
    xhr.addEventListener('load', () => {
      let body: unknown = null;
      try {
        if ((xhr.getResponseHeader('content-type') ?? '').includes('json')) body = JSON.parse(xhr.responseText);
      } catch {
        body = null;
      }
      if (xhr.status >= 200 && xhr.status < 300) {
        resolve(body as T);
        return;
      }
      const err = (body as { error?: { code?: string; message?: string; details?: unknown } } | null)?.error;
      if (xhr.status === 401) onSignedOut();
      reject(new ApiError(xhr.status, err?.code ?? `http_${xhr.status}`, err?.message ?? `The server answered ${xhr.status}.`, err?.details));
    });
    xhr.send(file);
  });
}

export type Session = { csrfToken: string; expiresAt: string };

export type IssueState = 'draft' | 'published' | 'scheduled' | 'sending' | 'paused' | 'sent' | 'cancelled';

export type Issue = {
  id: number;
  slug: string;
  subject: string;
  preheader: string;
  state: IssueState;
  scheduledAt: string | null;
  updatedAt: string;
  publishedAt: string | null;
  htmlBytes: number;
  warnings: string[];
  revision: number;
  inArchive: boolean;
  webUrl: string;
};

export type IssueDetail = Issue & { markdown: string; sections: { id: string; title: string }[] };

export type Revision = { number: number; kind: 'draft' | 'correction'; subject: string; preheader: string; markdownBytes: number; createdAt: string };

export type Media = { url: string; type: string; bytes: number; width: number; height: number };

export type SendProgress = {
  status: string;
  total: number;
  queued: number;
  submitted: number;
  failed: number;
  bounced: number;
  cancelled: number;
  fanoutDone: boolean;
  etaSeconds: number | null;
};
