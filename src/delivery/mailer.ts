import nodemailer from 'nodemailer';
import type SMTPPool from 'nodemailer/lib/smtp-pool/index.js';

export type OutgoingMail = {
  to: string;
  subject: string;
  html: string;
  text: string;
  headers?: Record<string, string>;
};

export type SubmitResult = { messageId: string; response: string };

/**
 * An already built MIME message and the SMTP envelope to submit it with. `dsn` asks the relay
 * (when it offers the DSN extension, RFC 3461) what to return if the message fails later.
 */
export type RawMail = { envelope: { from: string; to: string }; raw: Buffer; dsn?: { ret: 'HDRS' | 'FULL'; envid: string; notify: string } };

export type DkimOptions = { domainName: string; keySelector: string; privateKey: string };

/** The sending side only: takes a rendered message and submits it to the SMTP relay. */
export interface Mailer {
  send(mail: OutgoingMail): Promise<SubmitResult>;
  sendRaw(mail: RawMail): Promise<SubmitResult>;
  close(): Promise<void>;
}

export type MailerOptions = { smtpUrl: string; from: string; poolSize?: number; dkim?: DkimOptions };

export function createSmtpMailer({ smtpUrl, from, poolSize = 5, dkim }: MailerOptions): Mailer {
  const url = new URL(smtpUrl);
  const options: SMTPPool.Options = {
    pool: true,
    host: url.hostname,
    port: Number(url.port) || (url.protocol === 'smtps:' ? 465 : 587),
    secure: url.protocol === 'smtps:',
    maxConnections: poolSize,
    auth: url.username ? { user: decodeURIComponent(url.username), pass: decodeURIComponent(url.password) } : undefined,
    // A relay on loopback (a capture server, Mailpit) offers no certificate worth checking.
    tls: { rejectUnauthorized: !['localhost', '127.0.0.1', '::1'].includes(url.hostname) },
    connectionTimeout: 10_000,
    greetingTimeout: 10_000,
    socketTimeout: 30_000,
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
  return {
    async send(mail) {
      const info = await transport.sendMail({ from, ...mail });
      return { messageId: info.messageId, response: info.response };
    },
    async sendRaw(mail) {
      const info = await transport.sendMail({ envelope: mail.envelope, raw: mail.raw, ...(mail.dsn ? { dsn: mail.dsn } : {}) });
      return { messageId: info.messageId, response: info.response };
    },
    async close() {
      transport.close();
    },
  };
}

/** SMTP reply code of a nodemailer error, when the relay gave one. */
export function smtpResponseCode(err: unknown): number | undefined {
  const code = (err as { responseCode?: unknown }).responseCode;
  return typeof code === 'number' ? code : undefined;
}
