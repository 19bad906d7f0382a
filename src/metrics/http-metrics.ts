import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import type { Metrics } from './metrics.js';

/**
 * Counts and times every answer of the app by its route pattern (`/confirm/:token`, never the
 * URL itself, which may carry a reader token). Hooks the root instance directly, before the
 * routes are registered, so every route of the app and its plugins is measured. Not counted:
 * what Fastify refuses before routing (an undecodable %-escape, an overlong path segment),
 * which it answers outside the hooks.
 */
export function installHttpMetrics(app: FastifyInstance, metrics: Metrics): void {
  app.addHook('onResponse', (request, reply, done) => {
    // No route (a 404 from the router, or a URL the router could not parse): `url` is undefined.
    metrics.httpRequest(request.routeOptions.url, request.method, reply.statusCode, reply.elapsedTime / 1000);
    done();
  });
}

/**
 * `GET /metrics`, with the queue depths (the API reports them for every process). No token,
 * like most exporters: it holds counts and timings, no personal data and no secret. Keep the
 * API port off the public internet, or block `/metrics` at the reverse proxy.
 */
export function metricsRoutes(metrics: Metrics): FastifyPluginAsync {
  return async (app) => {
    app.get('/metrics', async (_request, reply) => {
      const text = await metrics.scrape({ queues: true });
      return reply.type(metrics.contentType).header('cache-control', 'no-store').send(text);
    });
  };
}
