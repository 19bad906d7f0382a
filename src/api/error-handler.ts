import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { isDatabaseUnavailable } from '../db/unavailable.js';
import { AppError } from '../errors.js';
import { sendErrorPage, wantsJson } from '../http/respond.js';

type Mapped = { status: number; code: string; message: string; details?: unknown };

// Fastify's own client-error codes, mapped to our stable codes and plain messages.
const FASTIFY_CODES: Record<string, { code: string; message?: string }> = {
  FST_ERR_CTP_INVALID_MEDIA_TYPE: {
    code: 'unsupported_media_type',
    message: 'unsupported content type: send application/json or a form (application/x-www-form-urlencoded)',
  },
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: { code: 'invalid_body', message: 'the request body does not match its Content-Length' },
  FST_ERR_CTP_BODY_TOO_LARGE: { code: 'payload_too_large', message: 'the request body is too large' },
  FST_ERR_CTP_EMPTY_JSON_BODY: { code: 'invalid_json', message: 'the JSON body is empty' },
  FST_ERR_CTP_INVALID_JSON_BODY: { code: 'invalid_json', message: 'the body is not valid JSON' },
  FST_ERR_CTP_INVALID_TYPE: { code: 'unsupported_media_type' },
  FST_ERR_INVALID_URL: { code: 'invalid_url', message: 'the URL is not valid' },
  FST_ERR_BAD_URL: { code: 'invalid_url', message: 'the URL is not valid' },
  // Its default message quotes the whole path, which may be a reader's token.
  FST_ERR_MAX_PARAM_LENGTH: { code: 'uri_too_long', message: 'the address is too long' },
};

/** Redis (or another dependency) unreachable: a 503 the client may retry, not a 500. */
function isDependencyDown(error: Error): boolean {
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string' && ['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE'].includes(code)) return true;
  // ioredis with enableOfflineQueue: false, and after its retries are spent.
  return error.name === 'MaxRetriesPerRequestError' || /enableOfflineQueue|Connection is closed/.test(error.message);
}

function map(error: FastifyError): Mapped {
  if (error instanceof AppError) return { status: error.status, code: error.code, message: error.message, details: error.details };
  if (error.validation) {
    const where = error.validationContext ?? 'request';
    const details = error.validation.map((v) => ({ path: `${where}${v.instancePath.replace(/\//g, '.')}`, message: v.message }));
    return { status: 400, code: 'invalid_input', message: details.map((d) => `${d.path} ${d.message}`).join('; '), details };
  }
  const status = error.statusCode ?? 500;
  const known = error.code ? FASTIFY_CODES[error.code] : undefined;
  if (status === 429) return { status, code: 'rate_limited', message: 'too many requests: wait a little and try again' };
  if (status === 413) return { status, code: 'payload_too_large', message: 'the request body is too large' };
  if (status === 415) return { status, code: 'unsupported_media_type', message: known?.message ?? error.message };
  if (known) return { status: status >= 400 && status < 500 ? status : 400, code: known.code, message: known.message ?? error.message };
  // Postgres first: its socket errors look like any other, and it is the one a handler reached.
  if (isDatabaseUnavailable(error))
    return { status: 503, code: 'database_unavailable', message: 'the database cannot be reached right now; please try again shortly' };
  if (isDependencyDown(error)) return { status: 503, code: 'unavailable', message: 'the service cannot answer right now; please try again shortly' };
  // Body parser errors (a SyntaxError from JSON.parse) carry 400 and no Fastify code.
  if (status === 400 && error instanceof SyntaxError) return { status, code: 'invalid_json', message: 'the body is not valid JSON' };
  if (status >= 400 && status < 500) return { status, code: 'bad_request', message: error.message };
  return { status: 500, code: 'internal', message: 'internal error' };
}

/**
 * The one place errors become responses: {"error":{"code","message"}} or an HTML page.
 * Used as the error handler, and meant for Fastify's `frameworkErrors` option too: errors the
 * router raises before any route matches (a bad %-escape, a path segment over maxParamLength)
 * otherwise bypass the error handler and answer with Fastify's own JSON.
 */
export function respondWithError(newsletter: string) {
  return (error: FastifyError, request: FastifyRequest, reply: FastifyReply) => {
    const m = map(error);
    // A dependency away is the operator's to see, not a bug: one line, no stack, per request.
    if (m.status === 503) request.log.warn({ code: m.code, err: error.message }, 'request refused: a dependency is unavailable');
    else if (m.status >= 500) request.log.error({ err: error }, 'request failed');
    else request.log.info({ code: m.code, status: m.status }, 'client error');
    if (m.status === 503) reply.header('retry-after', '5');
    if (wantsJson(request)) {
      return reply.code(m.status).send({ error: { code: m.code, message: m.message, ...(m.details !== undefined ? { details: m.details } : {}) } });
    }
    return sendErrorPage(reply, m.status, m.message, newsletter);
  };
}

export function installErrorHandling(app: FastifyInstance, newsletter: string): void {
  app.setErrorHandler(respondWithError(newsletter));
  app.setNotFoundHandler((request, reply) => {
    if (wantsJson(request))
      return reply.code(404).send({ error: { code: 'not_found', message: `no route for ${request.method} ${request.url.split('?')[0]}` } });
    return sendErrorPage(reply, 404, 'There is no page at this address.', newsletter);
  });
}
