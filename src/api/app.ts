import { randomUUID } from 'node:crypto';
import formbody from '@fastify/formbody';
import rateLimit from '@fastify/rate-limit';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { bounceApiRoutes } from '../bounces/api-routes.js';
import { webhookRoutes } from '../bounces/providers/webhook-routes.js';
import { captureRoutes } from '../capture/capture-routes.js';
import type { Container } from '../container.js';
import { archiveRoutes } from '../issues/archive-routes.js';
import { issueApiRoutes } from '../issues/api-routes.js';
import { previewLinkApiRoutes, previewPageRoutes } from '../issues/preview-routes.js';
import { mediaApiRoutes, mediaRoutes } from '../media/routes.js';
import { installHttpMetrics, metricsRoutes } from '../metrics/http-metrics.js';
import { sendApiRoutes } from '../sending/api-routes.js';
import { subscriberApiRoutes } from '../subscribers/api-routes.js';
import { readerRoutes } from '../subscribers/reader-routes.js';
import { requireEditor, requireOperator, tokenChecker } from './auth.js';
import { editorAppRoutes } from '../editor/app-routes.js';
import { EditorSessions } from '../editor/session.js';
import { sessionRoutes } from '../editor/session-routes.js';
import { AccessLog } from './access-log.js';
import { installErrorHandling, respondWithError } from './error-handler.js';
import { healthRoutes } from './health-routes.js';
import { newsletterRoutes } from './newsletter-routes.js';
import { registerOpenApi } from './openapi.js';
import { queueDashboard } from './queue-dashboard.js';
import { boundRequestBodies } from '../http/body-deadline.js';
import { capConnectionsPerAddress, serverOptions } from './server-options.js';
import { validatorCompiler } from './validation.js';

/** Public forms and JSON bodies are small; the CSV import streams and has its own limit. */
export const BODY_LIMIT = 64 * 1024;

/** Builds the HTTP app. Never listens: src/bin/* do that (tests use app.inject). */
export async function buildApp(c: Container): Promise<FastifyInstance> {
  const accessLog = new AccessLog();
  const app = Fastify({
    loggerInstance: c.log as FastifyBaseLogger,
    // Which peers may name the client (request.ip: rate limits, consent evidence), and timeouts.
    ...serverOptions(c.config),
    bodyLimit: BODY_LIMIT,
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && /^[\w.-]{1,64}$/.test(given) ? given : randomUUID();
    },
    requestIdHeader: false,
    routerOptions: { maxParamLength: 300 },
    // Router errors (a bad %-escape, an overlong path segment) get our error shape too.
    frameworkErrors: respondWithError(c.config.newsletterName),
    // One line per request, when it is answered.
    logController: accessLog,
  });
  // Closing waits for the last access lines (see AccessLog.settled).
  app.addHook('onClose', () => accessLog.settled(1000));
  capConnectionsPerAddress(app.server, { max: c.config.httpMaxConnectionsPerIp, trust: c.config.trustProxy, log: c.log });
  boundRequestBodies(app.server, c.config.httpBodyTimeoutSeconds);
  app.setValidatorCompiler(validatorCompiler);
  installErrorHandling(app, c.config.newsletterName);
  // Hooks on every request take a callback rather than return a promise: one microtask less each.
  app.addHook('onSend', (request, reply, payload, done) => {
    reply.header('x-request-id', request.id);
    done(null, payload);
  });
  // Counts every answer by route pattern (GET /metrics, below, serves the counts).
  installHttpMetrics(app, c.metrics);

  // Only JSON and forms (and, on the routes that want them, CSV and multipart) are accepted:
  // anything else is a 415.
  app.removeContentTypeParser(['text/plain']);
  await app.register(formbody, { bodyLimit: BODY_LIMIT });
  await app.register(rateLimit, {
    global: false,
    redis: c.redis,
    nameSpace: `${c.config.queuePrefix}:ratelimit:`,
    // Shared by every API process through Redis; if Redis is unreachable, refuse rather than
    // let a flood through.
    skipOnError: false,
  });

  // Before every route: the OpenAPI document is built from the routes it sees being added.
  await registerOpenApi(app);
  const check = tokenChecker(c.config.apiToken);
  await app.register(healthRoutes(c, check));
  await app.register(metricsRoutes(c.metrics));
  await app.register(readerRoutes(c));
  await app.register(archiveRoutes(c));
  await app.register(mediaRoutes(c));
  await app.register(previewPageRoutes(c));
  // Providers authenticate with their own signatures, not the bearer token; the plugin keeps
  // raw bodies (its own content-type parsers) for them.
  await app.register(webhookRoutes(c));

  // The editor's web app at /editor signs in once and then uses the API with a session cookie.
  const sessions = new EditorSessions(c.config.secret, c.config.apiToken, c.redis, c.config.queuePrefix, c.config.editorSessionHours);
  await app.register(
    sessionRoutes(sessions, {
      check,
      secure: c.config.publicUrl.startsWith('https:'),
      rateLimit: { max: c.config.signinRateLimit, timeWindow: c.config.signinRateWindowSeconds * 1000 },
    }),
  );
  await app.register(editorAppRoutes());

  await app.register(async (api) => {
    // onRequest: the token is checked before the body is read, so a stranger learns nothing
    // from validation messages and cannot make us parse a large body.
    api.addHook('onRequest', requireEditor(check, sessions));
    // An editor's change may change the public archive (a publish, a correction, an unpublish, a
    // send that publishes, a cancel that takes it back): this process looks again before its next
    // answer there, so the change shows at once. Before the answer leaves, so that a client
    // reading right after it cannot be served the old page. A look finding nothing new costs one
    // statement.
    api.addHook('onSend', async (request, reply) => {
      if (request.method !== 'GET' && request.method !== 'HEAD' && reply.statusCode < 400) c.archive.changed();
    });
    await api.register(subscriberApiRoutes(c));
    await api.register(newsletterRoutes(c));
    await api.register(issueApiRoutes(c));
    await api.register(sendApiRoutes(c));
    await api.register(bounceApiRoutes(c));
    await api.register(mediaApiRoutes(c));
    await api.register(previewLinkApiRoutes(c));
  });
  await app.register(async (ops) => {
    ops.addHook('onRequest', requireOperator(check));
    await ops.register(captureRoutes(c));
  });
  await app.register(queueDashboard(c, check), { prefix: '/admin/queues' });
  return app;
}
