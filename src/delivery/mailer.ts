import nodemailer from 'nodemailer';
import DKIM from 'nodemailer/lib/dkim';
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import type SMTPPool from 'nodemailer/lib/smtp-pool/index.js';
import { transportAddress } from '../subscribers/email-address.js';
import { installFastDotStuffing } from './dot-stuffing.js';

export type OutgoingMail = {
  to: string;
  subject: string;
  html: string;
  text: string;
  headers?: Record<string, string>;
};

/** `messageIdHeader`: the Message-ID the copy went out with; `response`: the relay's answer. */
export type SubmitResult = { messageIdHeader: string; response: string };

/**
 * An already built MIME message and the SMTP envelope to submit it with. `dsn` asks the relay
 * (when it offers the DSN extension, RFC 3461) what to return if the message fails later.
 * The envelope's addresses are in their wire form (see transportAddress): one with a non-ASCII
 * byte goes out only with SMTPUTF8.
 */
export type RawMail = {
  envelope: { from: string; to: string };
  raw: Buffer;
  /** The Message-ID in `raw` (without <>): what the result and nodemailer's own log name the message by. */
  messageIdHeader: string;
  dsn?: { ret: 'HDRS' | 'FULL'; envid: string; notify: string };
};

/**
 * What nodemailer's SMTP pool reads of a message (SMTPPool#send, PoolResource#send): its
 * envelope, its id, its options and its bytes. A built message needs none of what `sendMail`
 * does before it reaches the pool (the mail composer parsing the raw message's headers again, a
 * fresh random Message-ID it would not use, the plugin stages, a stream for a Buffer).
 */
type PooledMessage = {
  data: { dsn?: RawMail['dsn'] };
  message: {
    getEnvelope(): { from: string; to: string[]; size: number; use8BitMime?: boolean };
    messageId(): string;
    getHeader(name: string): string | undefined;
    createReadStream(): Buffer | NodeJS.ReadableStream;
  };
};
type PoolTransport = { send(mail: PooledMessage, callback: (err: Error | null, info?: { response: string }) => void): boolean };

export type DkimOptions = { domainName: string; keySelector: string; privateKey: string };

/**
 * The address needs SMTPUTF8 (its part before @ is not ASCII) and the relay does not offer it:
 * nothing was sent. Our relay's limit, not the reader's mailbox: never a bounce.
 */
export class SmtpUtf8Unavailable extends Error {
  readonly code = 'ESMTPUTF8';
  constructor() {
    super('not sent: the address needs SMTPUTF8 (its part before @ is not ASCII) and the SMTP relay does not offer it');
  }
}

/** How long the relay's answer on SMTPUTF8 is trusted before it is asked again. */
const SMTPUTF8_PROBE_TTL_MS = 10 * 60_000;

const NON_ASCII = /[^\x00-\x7f]/;

/** The sending side only: takes a rendered message and submits it to the SMTP relay. */
export interface Mailer {
  send(mail: OutgoingMail): Promise<SubmitResult>;
  /**
   * Resolves once the relay accepted the message: by then its whole data was written, and the
   * mailer reads `raw` no more (the worker builds the next copies in its memory, see CopyBuffers).
   */
  sendRaw(mail: RawMail): Promise<SubmitResult>;
  close(): Promise<void>;
}

export type MailerOptions = { smtpUrl: string; from: string; poolSize?: number; dkim?: DkimOptions };

export function createSmtpMailer({ smtpUrl, from, poolSize = 5, dkim }: MailerOptions): Mailer {
  // The same bytes on the wire as nodemailer's own dot-stuffing, for a tenth of its CPU.
  installFastDotStuffing();
  const url = new URL(smtpUrl);
  const connection = {
    host: url.hostname,
    port: Number(url.port) || (url.protocol === 'smtps:' ? 465 : 587),
    secure: url.protocol === 'smtps:',
    // A relay on loopback (a capture server, Mailpit) offers no certificate worth checking.
    tls: { rejectUnauthorized: !['localhost', '127.0.0.1', '::1'].includes(url.hostname) },
    connectionTimeout: 10_000,
    greetingTimeout: 10_000,
    socketTimeout: 30_000,
  };
  const options: SMTPPool.Options = {
    ...connection,
    pool: true,
    maxConnections: poolSize,
    auth: url.username ? { user: decodeURIComponent(url.username), pass: decodeURIComponent(url.password) } : undefined,
    // A message refused on a reused connection before any of it was sent (a 421, or a connection
    // the relay dropped) comes back to us rather than going straight onto another connection:
    // when to try again is the worker's business (back-off, pacing, see relay-pacing.ts). The
    // pool's own retry also keeps the first refusal on the message's envelope (nodemailer 10.6),
    // so it failed after a MAIL FROM the relay had accepted, one wasted connection per throttle.
    maxRequeues: 0,
    // Signs every message on its way out, raw ones included.
    dkim,
  };
  const transport = nodemailer.createTransport(options);
  // The pool under the transport: built messages go to it directly (see PooledMessage).
  const pool = (transport as unknown as { transporter: PoolTransport }).transporter;
  // The same signer nodemailer's sendMail applies, applied here to the built message.
  const signer = dkim ? new DKIM(dkim) : undefined;

  // nodemailer adds SMTPUTF8 to MAIL FROM when the relay offers it, but without the offer it
  // sends the UTF-8 address all the same, and the relay's refusal (5xx) would read as the
  // reader's hard bounce. So an address that needs it is held back unless the relay offers it.
  // Asked only when such an address comes up (rarely), and remembered for a while.
  let probe: { at: number; offers: Promise<boolean> } | undefined;
  const relayOffersSmtpUtf8 = (): Promise<boolean> => {
    if (!probe || Date.now() - probe.at > SMTPUTF8_PROBE_TTL_MS) {
      const offers = ehloOffers(connection, 'SMTPUTF8');
      // An unreachable relay is no answer: ask again next time.
      offers.catch(() => {
        if (probe?.offers === offers) probe = undefined;
      });
      probe = { at: Date.now(), offers };
    }
    return probe.offers;
  };
  const requireSmtpUtf8 = async (needed: boolean) => {
    if (needed && !(await relayOffersSmtpUtf8())) throw new SmtpUtf8Unavailable();
  };

  return {
    async send(mail) {
      // nodemailer would punycode the domain itself; done here so the one rule (transportAddress)
      // decides every address we mail.
      const to = transportAddress(mail.to);
      await requireSmtpUtf8(to.smtpUtf8);
      const info = await transport.sendMail({ from, ...mail, to: to.address });
      return { messageIdHeader: info.messageId, response: info.response };
    },
    async sendRaw(mail) {
      const smtpUtf8 = NON_ASCII.test(mail.envelope.from) || NON_ASCII.test(mail.envelope.to);
      await requireSmtpUtf8(smtpUtf8);
      const { raw, messageIdHeader } = mail;
      // A message for SMTPUTF8 carries UTF-8 in its header: sent as BODY=8BITMIME (RFC 6531, 3.1).
      // SIZE lets a relay that offers it refuse an oversized message before its bytes are sent.
      const envelope = { from: mail.envelope.from, to: [mail.envelope.to], size: raw.length, ...(smtpUtf8 ? { use8BitMime: true } : {}) };
      const message: PooledMessage = {
        data: mail.dsn ? { dsn: mail.dsn } : {},
        message: {
          // A copy each time: the connection adds its own fields to the envelope it is given.
          getEnvelope: () => ({ ...envelope, to: [...envelope.to] }),
          messageId: () => `<${messageIdHeader}>`,
          getHeader: (name) => (name.toLowerCase() === 'message-id' ? `<${messageIdHeader}>` : undefined),
          // A Buffer is written to the connection in one piece (and, when the copy was built
          // SMTP-ready, passed through without a scan: see dot-stuffing.ts). Signing makes a stream.
          createReadStream: () => (signer ? signer.sign(raw) : raw),
        },
      };
      const info = await new Promise<{ response: string }>((resolve, reject) => {
        pool.send(message, (err, result) => (err ? reject(err) : resolve(result!)));
      });
      return { messageIdHeader, response: info.response };
    },
    async close() {
      transport.close();
    },
  };
}

/**
 * Whether the relay's EHLO reply lists `extension`: one short connection (TLS as the pool uses
 * it, no login, no mail), closed with QUIT. Rejects when the relay cannot be reached.
 */
function ehloOffers(options: SMTPConnection.Options, extension: string): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const conn = new SMTPConnection(options);
    // After the answer, a late error (the relay hanging up on QUIT) changes nothing.
    conn.on('error', reject);
    conn.connect(() => {
      // The last reply before 'connect' is the EHLO reply (after STARTTLS, when there was one).
      const ehlo = conn.lastServerResponse || '';
      resolve(new RegExp(`^\\d{3}[ -]${extension}\\b`, 'im').test(ehlo));
      conn.quit();
    });
  });
}

/** SMTP reply code of a nodemailer error, when the relay gave one. */
export function smtpResponseCode(err: unknown): number | undefined {
  const code = (err as { responseCode?: unknown }).responseCode;
  return typeof code === 'number' ? code : undefined;
}
