import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import Type from 'typebox';
import { AppError, unauthorized } from '../errors.js';
import { ErrorSchema } from '../http/schemas.js';
import { CSRF_HEADER, cookieValue, type EditorSession, type EditorSessions, SESSION_COOKIE, sessionCookieHeader } from './session.js';

/** The scheme the OpenAPI document names for the session cookie (src/api/openapi.ts). */
export const SESSION_SCHEME = 'editorSession';

const SessionSchema = Type.Object({
  csrfToken: Type.String({ description: `send it as the ${CSRF_HEADER} header with every unsafe request made with the session` }),
  expiresAt: Type.String({ format: 'date-time', description: 'when the session ends (EDITOR_SESSION_HOURS after sign-in)' }),
});

export const csrfRefused = () =>
  new AppError(403, 'csrf_failed', `a request made with the editor's session must carry its ${CSRF_HEADER} header: sign in again if the app lost it`);

export type SessionOptions = { check: (token: string) => boolean; secure: boolean; rateLimit: { max: number; timeWindow: number } };

/** The session the request's cookie proves, if any. */
export const sessionOf = (sessions: EditorSessions, request: FastifyRequest): Promise<EditorSession | undefined> =>
  sessions.verify(cookieValue(request.headers.cookie, SESSION_COOKIE));

/**
 * Sign-in and sign-out for the editor's web app: the only routes the app has of its own. Every
 * other request it makes is to the documented API, with the session cookie instead of the token.
 */
export function sessionRoutes(sessions: EditorSessions, opts: SessionOptions): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.post(
      '/api/session',
      {
        schema: {
          tags: ['session'],
          description:
            "Signs the editor's web app in with the API token: sets an HttpOnly, SameSite=Strict session cookie (Secure when PUBLIC_URL is https). Rate-limited per address (SIGNIN_RATE_LIMIT). 401 for a wrong token.",
          security: [],
          body: Type.Object({ token: Type.String({ minLength: 1, maxLength: 1000 }) }),
          response: { 200: SessionSchema, 400: ErrorSchema, 429: ErrorSchema },
        },
        config: { rateLimit: opts.rateLimit },
      },
      async (request, reply) => {
        if (!opts.check(request.body.token)) {
          throw new AppError(401, 'unauthorized', 'that is not the API token: copy it again from the banner the service printed at start, or from API_TOKEN');
        }
        const { session, cookie, csrfToken } = sessions.open();
        reply.header('set-cookie', sessionCookieHeader(cookie, { secure: opts.secure, expiresAt: session.expiresAt })).header('cache-control', 'no-store');
        return { csrfToken, expiresAt: session.expiresAt.toISOString() };
      },
    );

    app.get(
      '/api/session',
      {
        schema: {
          tags: ['session'],
          description: "The editor's session from its cookie, and its CSRF token (for an app reloaded in the browser). 401 when signed out or expired.",
          security: [{ [SESSION_SCHEME]: [] }],
          response: { 200: SessionSchema, 503: ErrorSchema },
        },
      },
      async (request, reply) => {
        const session = await sessionOf(sessions, request);
        if (!session) throw unauthorized();
        reply.header('cache-control', 'no-store');
        return { csrfToken: sessions.csrfToken(session), expiresAt: session.expiresAt.toISOString() };
      },
    );

    app.delete(
      '/api/session',
      {
        schema: {
          tags: ['session'],
          description: `Signs out: the session ends on every copy of its cookie, and the cookie is cleared. Needs the ${CSRF_HEADER} header; without a live session it only clears the cookie.`,
          security: [{ [SESSION_SCHEME]: [] }],
          response: { 204: Type.Null(), 403: ErrorSchema },
        },
      },
      async (request, reply) => {
        const session = await sessionOf(sessions, request);
        if (session) {
          const given = request.headers[CSRF_HEADER];
          if (!sessions.csrfMatches(session, typeof given === 'string' ? given : undefined)) throw csrfRefused();
          await sessions.close(session);
        }
        return reply
          .code(204)
          .header('set-cookie', sessionCookieHeader(null, { secure: opts.secure }))
          .send(null);
      },
    );
  };
}
