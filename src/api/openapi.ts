import { readFileSync } from 'node:fs';
import { STATUS_CODES } from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance, FastifySchema } from 'fastify';
import Type from 'typebox';
import { publicRouteDocs } from './public-route-docs.js';
import { ErrorSchema } from '../http/schemas.js';
import { SESSION_COOKIE } from '../editor/session.js';
import { SESSION_SCHEME } from '../editor/session-routes.js';

/** Where the UI is served; the document itself is at `${DOCS_PREFIX}/json` (and `/yaml`). */
const DOCS_PREFIX = '/docs';

const BEARER_SCHEME = 'bearerAuth';

/** The routes the operator's tools probe; documented beside the editor API. */
const OPERATOR_ROUTES = new Set(['/healthz', '/readyz', '/metrics']);

const isEditorApi = (url: string) => url === '/api' || url.startsWith('/api/');

/**
 * What the operator routes answer, for those whose route declares no response schema of its own
 * (a schema on the route, when there is one, wins). Spec only: nothing here is used to serialize.
 */
const operatorDocs: Record<string, FastifySchema & { summary: string }> = {
  '/healthz': {
    summary: 'Liveness: the process answers',
    response: { 200: Type.Object({ status: Type.Literal('ok') }) },
  },
  '/readyz': {
    summary: 'Readiness: Postgres, Redis and the schema are usable',
    response: {
      200: Type.Object({ status: Type.Literal('ready'), checks: Type.Record(Type.String(), Type.String()) }, { description: 'every check is "ok"' }),
      503: Type.Object(
        { status: Type.Literal('unavailable'), checks: Type.Record(Type.String(), Type.String()) },
        { description: 'a failing check says "unavailable"; with the editor\'s Bearer token it holds the error message (always logged)' },
      ),
    },
  },
  '/metrics': {
    summary: 'Prometheus metrics (text exposition format)',
    response: { 200: { description: 'Prometheus text format', content: { 'text/plain': { schema: Type.String() } } } },
  },
};

const version = (() => {
  const file = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../package.json');
  try {
    return (JSON.parse(readFileSync(file, 'utf8')) as { version?: string }).version ?? '0.0.0';
  } catch {
    return '0.0.0';
  }
})();

type Responses = Record<string, Record<string, unknown>>;

/** Each response gets a description ("Not Found", ...) where its schema has none. Copies. */
function described(responses: Responses): Responses {
  return Object.fromEntries(
    Object.entries(responses).map(([code, schema]) => [
      code,
      schema.description === undefined ? { ...schema, description: STATUS_CODES[code] ?? code } : schema,
    ]),
  );
}

/**
 * The spec covers the editor API, the provider webhooks, the operator's probes, and the public
 * routes that answer JSON (sign-up, the reader's links, the archive: a site that posts to them
 * from its own script needs their contract). Everything else is hidden: pages for browsers (the
 * sign-up form, the confirm and manage pages), the operator's captured-mail inbox, the queue
 * dashboard and these docs. A new route is therefore hidden unless it is under /api, where the
 * OpenAPI test insists on its schemas, or is listed in public-route-docs.ts.
 */
function transform({ schema, url, route }: { schema: FastifySchema | undefined; url: string; route?: { method?: string | string[] } }): {
  schema: FastifySchema;
  url: string;
} {
  const own = (schema ?? {}) as FastifySchema & { hide?: boolean; security?: unknown; consumes?: string[] };
  if (own.hide) return { schema: own, url };
  const method = [route?.method ?? ''].flat()[0]!.toUpperCase();
  const publicDocs = publicRouteDocs[`${method} ${url}`];
  if (publicDocs) {
    // Public: no bearer token. The route's own request schemas stay; the answers are documented.
    return { url, schema: { ...own, ...publicDocs, security: [], response: described(publicDocs.response as Responses) } };
  }
  if (isEditorApi(url)) {
    // The bearer check runs before anything else on every /api route, so each can answer 401.
    // A copy: the route's own schema object is what Fastify serializes with.
    return {
      url,
      schema: {
        ...own,
        // A streamed body (the CSV import) has no body schema, since nothing validates it, but
        // the document should still say what to send.
        ...(own.consumes && !own.body ? { body: Type.String({ description: `the request body, as ${own.consumes.join(' or ')}` }) } : {}),
        // Either the token, or the web app's session cookie (with X-CSRF-Token on unsafe requests).
        security: own.security ?? [{ [BEARER_SCHEME]: [] }, { [SESSION_SCHEME]: [] }],
        response: described({
          ...(own.response as Responses | undefined),
          401: { ...ErrorSchema, description: 'missing or wrong bearer token (or no live session)' },
        }),
      },
    };
  }
  if (url.startsWith('/webhooks/')) {
    // Called by email providers, who authenticate with their own signatures: no bearer token.
    return { url, schema: { ...own, security: [], ...(own.response ? { response: described(own.response as Responses) } : {}) } };
  }
  if (OPERATOR_ROUTES.has(url)) {
    const docs = operatorDocs[url];
    const response = (own.response ?? docs?.response) as Responses | undefined;
    return { url, schema: { tags: ['operator'], ...docs, ...own, ...(response ? { response: described(response) } : {}) } };
  }
  return { url, schema: { ...own, hide: true } };
}

/**
 * Registers the OpenAPI document (built from the route schemas) and its UI at /docs. Must be
 * registered before the routes: @fastify/swagger learns them from the onRoute hook.
 *
 * /docs needs no token: it describes the API and holds no data, like the README does.
 */
export async function registerOpenApi(app: FastifyInstance): Promise<void> {
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Broadside',
        version,
        description:
          'The editor API (bearer token: API_TOKEN), the public routes that answer JSON (sign-up, the reader\'s links, the archive: no token) and the operator\'s probes. Errors are `{"error":{"code","message"}}`.',
      },
      tags: [
        { name: 'issues', description: 'Write, preview, test and publish issues' },
        { name: 'media', description: "Images for issues: the editor's uploads, and their public addresses (no token)" },
        { name: 'sends', description: 'Trigger and control the one send of an issue' },
        { name: 'bounces', description: 'Bounces, complaints and the raw reports behind them' },
        { name: 'webhooks', description: 'Bounce and complaint events from email providers, authenticated by their own signatures' },
        { name: 'subscribers', description: 'List, add, import, export and erase subscribers' },
        { name: 'readers', description: "Public: sign-up and the links in a reader's emails (no token)" },
        { name: 'archive', description: 'Public: the published issues (no token)' },
        { name: 'operator', description: 'Health, readiness and metrics' },
        { name: 'session', description: "The editor's web app: sign in with the API token, sign out" },
      ],
      components: {
        securitySchemes: {
          [BEARER_SCHEME]: { type: 'http', scheme: 'bearer', description: 'the API_TOKEN' },
          [SESSION_SCHEME]: {
            type: 'apiKey',
            in: 'cookie',
            name: SESSION_COOKIE,
            description:
              "the editor's web app: set by POST /api/session; unsafe requests also need the X-CSRF-Token header it answers with (403 csrf_failed without)",
          },
        },
      },
    },
    transform: transform as never,
  });
  await app.register(swaggerUi, {
    routePrefix: DOCS_PREFIX,
    staticCSP: true,
    uiConfig: { docExpansion: 'list', deepLinking: true },
  });
}
