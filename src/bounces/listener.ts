import type { AddressInfo } from 'node:net';
import { SMTPServer, type SMTPServerDataStream } from 'smtp-server';
import type { Container } from '../container.js';
import { handleInboundReport } from './inbound.js';

export type BounceListener = { port: number; close(): Promise<void> };

/** `bounces` or `bounces+<anything>`: the addresses our VERP return paths use. */
const BOUNCE_LOCAL = /^bounces(?:\+[^@]*)?$/i;

/** How long close() lets a sender finish its transaction before cutting it (it will retry). */
const CLOSE_TIMEOUT_MS = 5000;

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
 * - Mail over BOUNCE_MAX_BYTES is refused with 552 and never buffered past the limit.
 * - 250 only once the mail is stored in Postgres; a storage failure is answered 451 so the
 *   sender keeps it and retries: nothing accepted is lost.
 */
export async function startBounceListener(opts: { c: Container; port: number; host?: string }): Promise<BounceListener> {
  const { c } = opts;
  const maxBytes = c.config.bounceMaxBytes;
  const domain = c.config.bounceDomain?.toLowerCase();
  const inFlight = new Set<Promise<unknown>>();

  const server = new SMTPServer({
    name: c.config.bounceDomain ?? 'broadside-bounces',
    banner: 'Broadside bounce listener: delivery status notifications and feedback reports only',
    disabledCommands: ['AUTH', 'STARTTLS'],
    authOptional: true,
    size: maxBytes,
    closeTimeout: CLOSE_TIMEOUT_MS,
    logger: false,
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
      const chunks: Buffer[] = [];
      let size = 0;
      stream.on('data', (chunk: Buffer) => {
        size += chunk.length;
        // Past the limit the rest is read and dropped (the client must finish DATA before it
        // can be told 552), never kept.
        if (size <= maxBytes) chunks.push(chunk);
      });
      stream.once('error', (err) => {
        c.log.warn({ err: err.message }, 'bounce listener: error while receiving a message');
      });
      stream.once('end', () => {
        if (tooBig(stream, size, maxBytes)) {
          c.log.info({ bytes: size, maxBytes }, 'bounce listener: refused a message over BOUNCE_MAX_BYTES');
          return callback(smtpError(552, `5.3.4 message too big: the limit is ${maxBytes} bytes`));
        }
        const first = session.envelope.rcptTo[0]?.address ?? '';
        const mailFrom = session.envelope.mailFrom ? session.envelope.mailFrom.address || null : null;
        const work = handleInboundReport(c, { raw: Buffer.concat(chunks, size), mailFrom, rcptTo: first }).then(
          (r) => callback(null, `2.0.0 report ${r.reportId ?? '?'} ${r.duplicate ? 'already received' : 'stored'}`),
          (err: unknown) => {
            c.log.error({ err: errorText(err) }, 'bounce listener: could not store a report; answered 451 for the sender to retry');
            callback(smtpError(451, '4.3.0 could not store the report now, try again later'));
          },
        );
        inFlight.add(work);
        void work.finally(() => inFlight.delete(work));
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
    async close() {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      // A report being stored when its connection was cut: let it finish before the pool closes.
      await Promise.allSettled([...inFlight]);
    },
  };
}

function tooBig(stream: SMTPServerDataStream, size: number, maxBytes: number): boolean {
  return stream.sizeExceeded || size > maxBytes;
}

/** An error's message only: a pg error's detail may quote row values. */
function errorText(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}
