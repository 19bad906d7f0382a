import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../log.js';
import type { Metrics } from './metrics.js';

export type MetricsServer = {
  /** The bound port (the real one when asked for port 0). */
  readonly port: number;
  close(): Promise<void>;
};

/**
 * `GET /metrics` on a port of its own, for a worker-only process (which has no HTTP API). The
 * same exposition as the API's, less the queue depths, which the API reports for everyone.
 * No auth, like most exporters: counts and timings only.
 */
export async function startMetricsServer(metrics: Metrics, opts: { port: number; host: string; log: Logger }): Promise<MetricsServer> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0];
    if (path !== '/metrics' || (req.method !== 'GET' && req.method !== 'HEAD')) {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('not found: metrics are at GET /metrics\n');
      return;
    }
    metrics.scrape().then(
      (text) => {
        res.writeHead(200, { 'content-type': metrics.contentType, 'cache-control': 'no-store' });
        res.end(req.method === 'HEAD' ? undefined : text);
      },
      (err: Error) => {
        opts.log.error({ err }, 'could not collect metrics');
        res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end('could not collect metrics\n');
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (err) => opts.log.error({ err }, 'metrics server error'));
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        // Prometheus keeps its connection open between scrapes; close() alone would wait for it.
        server.closeIdleConnections();
      }),
  };
}

/**
 * The metrics server of a worker-only process, on METRICS_PORT and the HOST address. A port
 * already taken (most likely another worker on this machine) costs this worker its metrics,
 * not its work: it warns and runs on. Undefined then.
 */
export async function startWorkerMetrics(metrics: Metrics, opts: { port: number; host: string; log: Logger }): Promise<MetricsServer | undefined> {
  try {
    const server = await startMetricsServer(metrics, opts);
    opts.log.info({ port: server.port }, 'worker metrics at GET /metrics');
    return server;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
    opts.log.warn(
      { port: opts.port },
      'METRICS_PORT is in use (another worker on this machine?): this worker serves no metrics; give each worker its own METRICS_PORT',
    );
    return undefined;
  }
}
