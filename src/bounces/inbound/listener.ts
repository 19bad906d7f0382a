import type { AddressInfo } from 'node:net';
import pLimit from 'p-limit';
import { RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible';
import { SMTPServer, type SMTPServerSession } from 'smtp-server';
import type { Container } from '../../container.js';
import type { ListenerRefusal } from '../../metrics/metrics.js';
import { handleInboundReport } from './handle-report.js';
import { clientKey, inNetworks, ReceiveBudget } from './listener-limits.js';

export type BounceListener = {
  port: number;
  /** Bytes of incoming mail held in memory right now (received, not yet stored or refused). */
  readonly bufferedBytes: number;
  close(): Promise<void>;
};

/** `bounces` or `bounces+<anything>`: the addresses our VERP return paths use. */
const BOUNCE_LOCAL = /^bounces(?:\+[^@]*)?$/i;

/** How long close() lets a sender finish its transaction before cutting it (it will retry). */
const CLOSE_TIMEOUT_MS = 5000;

/** A mail's first bytes always fit in the budget (see ReceiveBudget): every DSN is smaller. */
const ALWAYS_BUFFERED_BYTES = 64 * 1024;

/**
 * Mails over 64 KiB read and stored at once. Reading a mail (mailparser) takes ~7 times its size in memory
 * for a moment and ~0.1 s of CPU per MiB; the others wait their turn with their bytes counted in
 * the budget. Four keep a burst of small DSNs flowing (each waits on Postgres more than on CPU)
 * and leave the API's HTTP requests most of the pool.
 */
const STORE_CONCURRENCY = 4;

/** At most one warning a minute per kind of refusal: a flood must not flood the log too. */
const REFUSAL_LOG_INTERVAL_MS = 60_000;

const smtpError = (responseCode: number, message: string): Error => Object.assign(new Error(message), { responseCode });

/**
 * The inbound SMTP server for delivery status notifications and abuse feedback reports
 * (BOUNCE_SMTP_PORT). Point the MX of BOUNCE_DOMAIN (or a relay's transport for it) here.
 *
 * - Takes mail only for `bounces@` / `bounces+<token>@` BOUNCE_DOMAIN (any domain when it is
 *   unset); anything else is refused at RCPT TO, so the listener is no open inbox.
 * - No AUTH (senders are remote MTAs, anonymous by nature; what they claim is trusted only
 *   through signed tokens) and no STARTTLS (no certificate to offer; put a TLS-terminating relay
 *   in front where that matters).
 * - 250 only once the mail is stored in Postgres; a storage failure is answered 451 so the
 *   sender keeps it and retries: nothing accepted is lost.
 *
 * Anyone can connect, so what one client, and all of them together, can make this process hold
 * is bounded. Every limit but the size answers 4xx: a real MTA keeps the mail and retries later,
 * so nothing legitimate is lost, only delayed.
 * - Connections at once: BOUNCE_MAX_CONNECTIONS in all, BOUNCE_MAX_CONNECTIONS_PER_IP from one
 *   address (an IPv6 /64): 421 4.7.0 at the greeting. An idle connection is closed after the
 *   library's 60 s socket timeout.
 * - Mails from one address: BOUNCE_MESSAGES_PER_IP_PER_MINUTE, counted at MAIL FROM (attempts,
 *   accepted or not): 451 4.7.1. In this process's memory, not Redis: the listener serves one
 *   port in one process and keeps working while Redis is away; N API processes with listeners
 *   allow N times the figure.
 * - BOUNCE_TRUSTED_IPS (the operator's own relay, which returns most DSNs in bursts after a
 *   send) are exempt from the two per-address limits, not from the others.
 * - Recipients per mail: BOUNCE_MAX_RECIPIENTS, then smtp-server's own `452 Error: too many
 *   recipients` (maxRecipients, RFC 5321 4.5.3.1.10); the mail is stored once whatever their
 *   number.
 * - Size: mail over BOUNCE_MAX_BYTES is refused with 552 5.3.4 (a SIZE= over it at MAIL FROM,
 *   by smtp-server), and never buffered past the limit: the rest is read and dropped.
 * - Memory: at most BOUNCE_BUFFER_BYTES of mail held at once across connections, from DATA
 *   until stored (ReceiveBudget). A mail that would grow past it drops what it held at once, is
 *   read to its end and answered 452 4.3.1; a mail's first 64 KiB always fit, so the bound is
 *   BOUNCE_BUFFER_BYTES + BOUNCE_MAX_CONNECTIONS × 64 KiB, and a DSN arriving during a flood of
 *   big mail is still taken. Refusing beats streaming to a temporary file: a mail that has to
 *   wait is safer in its sender's queue than on our disk, and storing it needs it in memory
 *   anyway (one bytea parameter). Reading takes several times a mail's size, so at most
 *   STORE_CONCURRENCY mails over 64 KiB are read and stored at once.
 */
export async function startBounceListener(opts: {
  c: Pick<Container, 'pool' | 'config' | 'metrics' | 'messageTokens' | 'log'>;
  port: number;
  host?: string;
}): Promise<BounceListener> {
  const { c } = opts;
  const cfg = c.config;
  const maxBytes = cfg.bounceMaxBytes;
  const domain = cfg.bounceDomain?.toLowerCase();
  const inFlight = new Set<Promise<unknown>>();
  const budget = new ReceiveBudget(cfg.bounceBufferBytes, ALWAYS_BUFFERED_BYTES);
  const perMinute = new RateLimiterMemory({ points: cfg.bounceMessagesPerIpPerMinute, duration: 60 });
  const trusted = (session: SMTPServerSession) => inNetworks(session.remoteAddress, cfg.bounceTrustedIps);
  const refused = refusalLog(c);
  const storing = pLimit(STORE_CONCURRENCY);

  const server: SMTPServer = new SMTPServer({
    name: cfg.bounceDomain ?? 'broadside-bounces',
    banner: 'Broadside bounce listener: delivery status notifications and feedback reports only',
    disabledCommands: ['AUTH', 'STARTTLS'],
    authOptional: true,
    size: maxBytes,
    maxRecipients: cfg.bounceMaxRecipients,
    // The client's host name is never used; a PTR query per connection would only let a flood
    // of connections flood the resolver too.
    disableReverseLookup: true,
    closeTimeout: CLOSE_TIMEOUT_MS,
    logger: false,
    onConnect(session, callback) {
      // Counted here (not with smtp-server's maxClients) so both limits answer alike and are
      // counted in the metrics. `connections` holds this one too, and loses a refused one at once.
      if (server.connections.size > cfg.bounceMaxConnections) {
        refused('connections', session);
        return callback(smtpError(421, '4.7.0 too many connections right now, try again later'));
      }
      if (!trusted(session)) {
        const key = clientKey(session.remoteAddress);
        let fromKey = 0;
        for (const conn of server.connections) if (clientKey(conn.remoteAddress) === key) fromKey++;
        if (fromKey > cfg.bounceMaxConnectionsPerIp) {
          refused('connections_per_ip', session);
          return callback(smtpError(421, `4.7.0 too many connections from ${key} (at most ${cfg.bounceMaxConnectionsPerIp} at once), try again later`));
        }
      }
      callback();
    },
    onMailFrom(_address, session, callback) {
      if (trusted(session)) return callback();
      const key = clientKey(session.remoteAddress);
      perMinute.consume(key).then(
        () => callback(),
        (res: unknown) => {
          if (!(res instanceof RateLimiterRes)) return callback(res as Error);
          refused('rate', session);
          const seconds = Math.max(1, Math.ceil(res.msBeforeNext / 1000));
          callback(smtpError(451, `4.7.1 too many mails from ${key} (at most ${cfg.bounceMessagesPerIpPerMinute} a minute), try again in ${seconds} s`));
        },
      );
    },
    onRcptTo(address, _session, callback) {
      const at = address.address.lastIndexOf('@');
      const local = at > 0 ? address.address.slice(0, at) : '';
      const rcptDomain = at > 0 ? address.address.slice(at + 1).toLowerCase() : '';
      if (!BOUNCE_LOCAL.test(local) || !rcptDomain || (domain !== undefined && rcptDomain !== domain)) {
        const where = domain ? `bounces@${domain}` : 'bounces@<domain>';
        return callback(smtpError(550, `5.1.1 no such mailbox: this server only takes bounce and feedback reports for ${where}`));
      }
      callback();
    },
    onData(stream, session, callback) {
      let chunks: Buffer[] = [];
      let size = 0;
      // Bytes this mail holds in the budget; released exactly once, when it is stored, refused
      // or its connection is cut.
      let held = 0;
      let over: 'size' | 'memory' | undefined;
      const letGo = () => {
        budget.release(held);
        held = 0;
        chunks = [];
      };
      stream.on('data', (chunk: Buffer) => {
        size += chunk.length;
        // Past a limit the rest is read and dropped (the client must finish DATA before it can
        // be told), never kept.
        if (over) return;
        if (size > maxBytes) over = 'size';
        else if (!budget.take(held, chunk.length)) over = 'memory';
        if (over) return letGo();
        held += chunk.length;
        chunks.push(chunk);
      });
      stream.once('error', (err) => {
        letGo();
        c.log.warn({ err: err.message }, 'bounce listener: error while receiving a message');
      });
      stream.once('end', () => {
        if (over === 'size' || stream.sizeExceeded) {
          letGo();
          refused('size', session, { bytes: size, maxBytes });
          return callback(smtpError(552, `5.3.4 message too big: the limit is ${maxBytes} bytes`));
        }
        if (over === 'memory') {
          refused('memory', session, { bytes: size, bufferBytes: cfg.bounceBufferBytes });
          return callback(smtpError(452, '4.3.1 too much mail being received right now, try again later'));
        }
        const first = session.envelope.rcptTo[0]?.address ?? '';
        const mailFrom = session.envelope.mailFrom ? session.envelope.mailFrom.address || null : null;
        const raw = Buffer.concat(chunks, size);
        chunks = [];
        const store = () => handleInboundReport(c, { raw, mailFrom, rcptTo: first });
        // A DSN-sized mail is cheap to read: it never waits behind big ones.
        const work = (size <= ALWAYS_BUFFERED_BYTES ? store() : storing(store)).then(
          (r) => callback(null, `2.0.0 report ${r.reportId ?? '?'} ${r.duplicate ? 'already received' : 'stored'}`),
          (err: unknown) => {
            c.log.error({ err: errorText(err) }, 'bounce listener: could not store a report; answered 451 for the sender to retry');
            callback(smtpError(451, '4.3.0 could not store the report now, try again later'));
          },
        );
        inFlight.add(work);
        void work.finally(() => {
          letGo();
          inFlight.delete(work);
        });
      });
    },
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host ?? '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  // After start, errors are per connection (a client resetting its socket, a protocol error):
  // logged, never fatal.
  server.on('error', (err: Error & { code?: string }) => c.log.warn({ err: err.message, code: err.code }, 'bounce listener: connection error'));
  const port = (server.server.address() as AddressInfo).port;
  return {
    port,
    get bufferedBytes() {
      return budget.held;
    },
    async close() {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      // A report being stored when its connection was cut: let it finish before the pool closes.
      await Promise.allSettled([...inFlight]);
    },
  };
}

/**
 * Counts a refusal in the metrics and logs it, at most once a minute per reason with the number
 * refused since the last line.
 */
function refusalLog(c: Pick<Container, 'log' | 'metrics'>) {
  const last = new Map<ListenerRefusal, { at: number; since: number }>();
  return (reason: ListenerRefusal, session: SMTPServerSession, extra: Record<string, unknown> = {}) => {
    c.metrics.listenerRefused(reason);
    const now = Date.now();
    const entry = last.get(reason);
    if (entry && now - entry.at < REFUSAL_LOG_INTERVAL_MS) {
      entry.since++;
      return;
    }
    last.set(reason, { at: now, since: 0 });
    c.log.warn(
      { reason, client: session.remoteAddress, ...extra, refusedSinceLastLine: entry?.since ?? 0 },
      'bounce listener: refused a client over a limit (it may retry later); at most one line a minute per reason',
    );
  };
}

/** An error's message only: a pg error's detail may quote row values. */
function errorText(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}
