import type { Server, ServerOptions } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyServerOptions } from 'fastify';
import type { Config, TrustProxy } from '../config/schema.js';
import { rawError, TIMED_OUT } from '../http/body-deadline.js';
import type { LogLines } from '../log.js';
import { proxyMatcher, trustProxyOption } from './proxy-trust.js';

type HttpSettings = Pick<
  Config,
  'trustProxy' | 'httpHeadersTimeoutSeconds' | 'httpUploadTimeoutSeconds' | 'httpIdleTimeoutSeconds' | 'httpKeepAliveTimeoutSeconds'
>;

/**
 * What the server is told about proxies and time. Fastify leaves `requestTimeout` and
 * `connectionTimeout` at 0 (never), so a client sending its body a byte at a time held a
 * connection for as long as it liked. Each bound here is one a real client on a slow link does
 * not reach; the README ("HTTP timeouts and connection limits") gives the reasons for each number.
 */
export function serverOptions(
  config: HttpSettings,
): Pick<FastifyServerOptions, 'trustProxy' | 'requestTimeout' | 'connectionTimeout' | 'keepAliveTimeout' | 'clientErrorHandler'> & { http: ServerOptions } {
  // The outer bound, for every request: what the editor's CSV import needs. Every other request
  // is held to HTTP_BODY_TIMEOUT_SECONDS by boundRequestBodies.
  const requestTimeout = config.httpUploadTimeoutSeconds * 1000;
  const headersTimeout = config.httpHeadersTimeoutSeconds * 1000;
  return {
    trustProxy: trustProxyOption(config.trustProxy),
    requestTimeout,
    // No byte in either direction for this long while a request is under way: the socket is
    // closed (a stalled upload, a download nobody reads).
    connectionTimeout: config.httpIdleTimeoutSeconds * 1000,
    // An idle connection between two requests (Node keeps it one second longer than it announces
    // in Keep-Alive, so a client that honours the header never races the close).
    keepAliveTimeout: config.httpKeepAliveTimeoutSeconds * 1000,
    http: {
      requestTimeout,
      // Also bounds a connection that never sends a byte.
      headersTimeout,
      // Node checks the two bounds above on this beat (30 s by default, which lets a 30 s bound
      // run to 60): once a second, or faster for the short bounds tests use.
      connectionsCheckingInterval: Math.min(1000, Math.floor(headersTimeout / 2)),
    },
    clientErrorHandler,
  };
}

const CLIENT_ERRORS: Record<string, { status: number; code: string; message: string }> = {
  ERR_HTTP_REQUEST_TIMEOUT: TIMED_OUT,
  HPE_HEADER_OVERFLOW: { status: 431, code: 'headers_too_large', message: 'the request headers are too large' },
};

/**
 * What a client gets when its request could not be read at all (headers too slow or too big, not
 * HTTP): our error shape rather than Fastify's, then the connection is closed. No route ran, so
 * there is no request log line; this one is at debug, as a flood of them says nothing new.
 */
function clientErrorHandler(this: { log: LogLines }, err: Error & { code?: string }, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const known = CLIENT_ERRORS[err.code ?? ''] ?? { status: 400, code: 'bad_request', message: 'the request is not valid HTTP' };
  this.log.debug({ code: err.code, status: known.status }, 'client error: connection closed');
  rawError(socket, known);
  socket.destroy();
}

/**
 * Closes a new connection at once when its peer already holds `max` open ones, so a single
 * address cannot tie up thousands of sockets with slow requests. Peers that are our proxies are
 * exempt: behind a proxy every connection comes from its address, and the cap would throttle
 * every reader at once (the proxy is where a per-client cap belongs there: nginx's limit_conn).
 * With TRUST_PROXY as a hop count any peer may be the proxy, so there is no cap at all.
 */
export function capConnectionsPerAddress(server: Server, opts: { max: number; trust: TrustProxy; log: LogLines }): void {
  const { max, trust, log } = opts;
  if (max === 0) return;
  if (trust !== false && 'hops' in trust) {
    log.info({ max }, 'HTTP_MAX_CONNECTIONS_PER_IP does not apply: with TRUST_PROXY as a hop count any peer may be the proxy (give its addresses instead)');
    return;
  }
  const exempt = trust === false ? () => false : proxyMatcher(trust.addresses);
  // Open connections per peer; an entry goes when its last connection closes, which also
  // re-arms the one warning per burst.
  const open = new Map<string, { count: number; warned: boolean }>();
  server.on('connection', (socket: Socket) => {
    const address = socket.remoteAddress;
    // No address: the peer has already gone.
    if (address === undefined || exempt(address)) return;
    let entry = open.get(address);
    if (!entry) {
      entry = { count: 0, warned: false };
      open.set(address, entry);
    }
    if (entry.count >= max) {
      if (!entry.warned) {
        entry.warned = true;
        log.warn({ peer: address, max }, 'too many open connections from one address: closing new ones until some end (HTTP_MAX_CONNECTIONS_PER_IP)');
      }
      socket.destroy();
      return;
    }
    entry.count++;
    const counted = entry;
    socket.once('close', () => {
      if (--counted.count === 0 && open.get(address) === counted) open.delete(address);
    });
  });
}
