import { STATUS_CODES, type Server, type ServerOptions } from 'node:http';
import { BlockList, isIPv4, type Socket } from 'node:net';
import type { FastifyServerOptions } from 'fastify';
import { PROXY_RANGES, type Config, type TrustProxy } from '../config/schema.js';
import type { LogLines } from '../log.js';

type HttpSettings = Pick<Config,
  'trustProxy' | 'httpRequestTimeoutSeconds' | 'httpHeadersTimeoutSeconds' | 'httpIdleTimeoutSeconds' | 'httpKeepAliveTimeoutSeconds'>;

/**
 * What the listening server is told about proxies and time. Fastify leaves `requestTimeout` and
 * `connectionTimeout` at 0 (never), so a client sending its body a byte at a time would hold a
 * connection for ever; each bound here is what a real client on a slow link never reaches.
 */
export function serverOptions(config: HttpSettings): Pick<FastifyServerOptions, 'trustProxy' | 'requestTimeout' | 'connectionTimeout' | 'keepAliveTimeout' | 'clientErrorHandler'> & { http: ServerOptions } {
  const requestTimeout = config.httpRequestTimeoutSeconds * 1000;
  const headersTimeout = config.httpHeadersTimeoutSeconds * 1000;
  return {
    trustProxy: trustProxyOption(config.trustProxy),
    // Headers and body must all have arrived within this (Node answers 408 and closes).
    requestTimeout,
    // No byte in either direction for this long during a request: the socket is closed.
    connectionTimeout: config.httpIdleTimeoutSeconds * 1000,
    // An idle connection between two requests.
    keepAliveTimeout: config.httpKeepAliveTimeoutSeconds * 1000,
    http: {
      requestTimeout,
      headersTimeout,
      // Node checks the two bounds above on this beat (30 s by default, which could let a
      // 30 s bound run to 60): once a second, or faster for the short bounds tests use.
      connectionsCheckingInterval: Math.min(1000, Math.floor(headersTimeout / 2)),
    },
    clientErrorHandler,
  };
}

const CLIENT_ERRORS: Record<string, { status: number; code: string; message: string }> = {
  ERR_HTTP_REQUEST_TIMEOUT: { status: 408, code: 'request_timeout', message: 'the request did not arrive in time (HTTP_REQUEST_TIMEOUT_SECONDS, HTTP_HEADERS_TIMEOUT_SECONDS)' },
  HPE_HEADER_OVERFLOW: { status: 431, code: 'headers_too_large', message: 'the request headers are too large' },
};

/**
 * What a client gets when its request could not be read at all (too slow, headers too big, not
 * HTTP): our error shape rather than Fastify's, then the connection is closed. No route ran, so
 * there is no request log line; this one is at debug, as a flood of them says nothing new.
 */
function clientErrorHandler(this: { log: LogLines }, err: Error & { code?: string }, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const known = CLIENT_ERRORS[err.code ?? ''] ?? { status: 400, code: 'bad_request', message: 'the request is not valid HTTP' };
  this.log.debug({ code: err.code, status: known.status }, 'client error: connection closed');
  if (socket.writable) {
    const body = JSON.stringify({ error: { code: known.code, message: known.message } });
    socket.write(`HTTP/1.1 ${known.status} ${STATUS_CODES[known.status]}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
  }
  socket.destroy();
}

/**
 * Fastify's `trustProxy` for our setting. A hop count is given as a function: Fastify 5 takes a
 * bare number as "trust nobody" (it cannot check the nearest peer), which would key every
 * reader's rate limit on the proxy's address. With a function, X-Forwarded-For is read from the
 * right: the nearest `hops` entries are proxies, the one before them is the client, and whatever
 * the client wrote further left is never believed.
 */
export function trustProxyOption(trust: TrustProxy): false | ((address: string, hop: number) => boolean) {
  if (trust === false) return false;
  if ('hops' in trust) {
    const { hops } = trust;
    return (_address, hop) => hop < hops;
  }
  const isProxy = proxyMatcher(trust.addresses);
  return (address) => isProxy(address);
}

/** Whether an address is one of these IPs or ranges (IPv4-mapped IPv6 addresses count as IPv4). */
export function proxyMatcher(entries: readonly string[]): (address: string) => boolean {
  const list = new BlockList();
  for (const entry of entries.flatMap((e) => PROXY_RANGES[e] ?? [e])) {
    const [address, prefix] = entry.split('/') as [string, string | undefined];
    const family = isIPv4(address) ? 'ipv4' : 'ipv6';
    if (prefix === undefined) list.addAddress(address, family);
    else list.addSubnet(address, Number(prefix), family);
  }
  return (address) => list.check(address, isIPv4(address) ? 'ipv4' : 'ipv6');
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
    if (!entry) open.set(address, (entry = { count: 0, warned: false }));
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
