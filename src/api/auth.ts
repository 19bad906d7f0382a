import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { csrfRefused, sessionOf } from '../editor/session-routes.js';
import { CSRF_HEADER, type EditorSessions } from '../editor/session.js';
import { unauthorized } from '../errors.js';

/**
 * Checks the editor's token in constant time: both sides are reduced to HMACs of equal length
 * under a per-process key, so neither the content nor the length of the token leaks by timing.
 */
export function tokenChecker(apiToken: string): (candidate: string) => boolean {
  const key = randomBytes(32);
  const digest = (s: string) => createHmac('sha256', key).update(s).digest();
  const expected = digest(apiToken);
  return (candidate) => timingSafeEqual(digest(candidate), expected);
}

function presentedToken(request: FastifyRequest, allowBasic: boolean): string | undefined {
  const header = request.headers.authorization;
  if (!header) return undefined;
  const bearer = /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (bearer) return bearer[1];
  // Browsers can only prompt for Basic credentials: the operator's pages accept the token as password.
  const basic = allowBasic ? /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header) : null;
  if (basic) {
    // user-pass is "user:password" (RFC 7617); without the colon there is no password at all.
    const decoded = Buffer.from(basic[1]!, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    return colon === -1 ? undefined : decoded.slice(colon + 1);
  }
  return undefined;
}

/** Whether the request carries the editor's token as a Bearer (for routes open to all that say more to the editor). */
export function presentsBearer(request: FastifyRequest, check: (t: string) => boolean): boolean {
  const token = presentedToken(request, false);
  return token !== undefined && check(token);
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * onRequest hook for the editor API: the Bearer token (scripts, the CLI), or the web app's
 * session cookie. A browser sends the cookie with any request to us, so an unsafe request made
 * with it must also carry the session's CSRF token in a header, which a form or a page on
 * another site cannot set: without it, 403 csrf_failed, whatever the cookie.
 */
export function requireEditor(check: (t: string) => boolean, sessions: EditorSessions) {
  return async (request: FastifyRequest, reply: FastifyReply) => {
    const token = presentedToken(request, false);
    if (token !== undefined && check(token)) return;
    const session = token === undefined ? await sessionOf(sessions, request) : undefined;
    if (!session) {
      reply.header('www-authenticate', 'Bearer realm="Broadside editor API"');
      throw unauthorized();
    }
    if (SAFE_METHODS.has(request.method)) return;
    const given = request.headers[CSRF_HEADER];
    if (!sessions.csrfMatches(session, typeof given === 'string' ? given : undefined)) throw csrfRefused();
  };
}

/** preHandler for operator pages opened in a browser: Bearer, or Basic with the token as password. */
export function requireOperator(check: (t: string) => boolean) {
  return async (request: FastifyRequest, reply: FastifyReply) => {
    const token = presentedToken(request, true);
    if (token === undefined || !check(token)) {
      reply.header('www-authenticate', 'Basic realm="Broadside operator (password: API token)", charset="UTF-8"');
      throw unauthorized();
    }
  };
}
