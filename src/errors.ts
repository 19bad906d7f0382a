// Domain errors carry a stable `code` (clients may branch on it) and an HTTP status.
// The one Fastify error handler (src/api/error-handler.ts) turns them into
// {"error":{"code","message"}} or an HTML page.

export class AppError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
    this.name = 'AppError';
  }
}

export const invalidInput = (message: string, details?: unknown) => new AppError(400, 'invalid_input', message, details);
export const notFound = (what = 'resource') => new AppError(404, 'not_found', `${what} not found`);
export const conflict = (code: string, message: string) => new AppError(409, code, message);
export const unauthorized = () => new AppError(401, 'unauthorized', 'missing or invalid bearer token');

/** A streamed request body went past its limit while it was being read. */
export class PayloadTooLarge extends AppError {
  constructor(message: string, details?: unknown) {
    super(413, 'payload_too_large', message, details);
    this.name = 'PayloadTooLarge';
  }
}

/** The client stopped sending a streamed request body before its end. */
export class UploadAborted extends AppError {
  constructor(message: string) {
    super(400, 'upload_aborted', message);
    this.name = 'UploadAborted';
  }
}
