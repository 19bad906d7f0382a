// One SMTP session with the relay (or a local SMTP server): its greeting, EHLO (and STARTTLS when
// offered), then the login SMTP_URL asks for. `broadside doctor` shows each step; nothing is sent.
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import { redactUrl } from '../config/index.js';
import { networkCode, networkReason, UNREACHABLE } from './startup-error.js';

type SmtpError = Error & { code?: string; response?: string; responseCode?: number };

export type SmtpProbe = {
  /** Where, as shown: host:port. */
  server: string;
  /** The server's first line (220 …), when it sent one. */
  greeting?: string;
  /** Connecting, the greeting, EHLO and STARTTLS: the error, or undefined when they went through. */
  connectError?: SmtpError;
  /** The login: undefined when SMTP_URL names no user (none is tried) or connecting failed. */
  login?: { user: string; error?: SmtpError };
};

const LOOPBACK = ['localhost', '127.0.0.1', '::1'];

export async function probeSmtp(smtpUrl: string, timeoutMs = 10_000): Promise<SmtpProbe> {
  const url = new URL(smtpUrl);
  const port = Number(url.port) || (url.protocol === 'smtps:' ? 465 : 587);
  const result: SmtpProbe = { server: `${url.hostname}:${port}` };
  // The server's lines reach us through nodemailer's transaction log; the first is the greeting.
  const onLine = (entry: { tnx?: string }, message: unknown) => {
    if (entry?.tnx === 'server' && result.greeting === undefined && typeof message === 'string') result.greeting = message.split(/\r?\n/)[0];
  };
  const ignore = () => undefined;
  const connection = new SMTPConnection({
    host: url.hostname,
    port,
    secure: url.protocol === 'smtps:',
    // As the mailer does: a relay on loopback offers no certificate worth checking.
    tls: { rejectUnauthorized: !LOOPBACK.includes(url.hostname) },
    connectionTimeout: timeoutMs,
    greetingTimeout: timeoutMs,
    socketTimeout: timeoutMs,
    transactionLog: true,
    logger: { level: ignore, trace: ignore, debug: onLine, info: ignore, warn: ignore, error: ignore, fatal: ignore } as never,
  });
  // Errors also come as events; the callbacks below carry them.
  connection.on('error', () => undefined);
  try {
    await new Promise<void>((resolve, reject) => {
      connection.once('error', reject);
      connection.connect(() => {
        connection.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    result.connectError = err as SmtpError;
    connection.close();
    return result;
  }
  if (url.username) {
    const user = decodeURIComponent(url.username);
    result.login = { user };
    try {
      await new Promise<void>((resolve, reject) => {
        connection.login({ user, pass: decodeURIComponent(url.password) }, (err) => (err ? reject(err) : resolve()));
      });
    } catch (err) {
      result.login.error = err as SmtpError;
    }
  }
  connection.quit();
  return result;
}

/** What went wrong while connecting or greeting, in words, naming SMTP_URL (redacted) when given. */
export function describeSmtpConnectError(probe: SmtpProbe, smtpUrl?: string): string[] {
  const err = probe.connectError!;
  const code = networkCode(err);
  const setting = smtpUrl ? `SMTP_URL=${redactUrl(smtpUrl)}. ` : '';
  if (code && UNREACHABLE.has(code)) {
    return [
      `no SMTP server answers at ${probe.server} (${networkReason(code, err.message)})`,
      `${setting}Check the relay's host and port (587 for submission, 465 with smtps://).`,
    ];
  }
  if (/certificate|SSL|TLS|wrong version number/i.test(err.message)) {
    return [
      `TLS with ${probe.server} failed: ${err.message}`,
      `${setting}Use smtps:// for a port that speaks TLS at once (465), smtp:// for one that offers STARTTLS (587, 25).`,
    ];
  }
  if (err.code === 'ETIMEDOUT') {
    return [
      `${probe.server} did not greet within the time allowed (${err.message})`,
      `${setting}Check that this port is an SMTP port (and smtps:// vs smtp://).`,
    ];
  }
  return [`${probe.server} refused the session: ${err.response ?? err.message}`, `${setting}The relay's log says why.`];
}

/** Why the login failed, in words (never the password). */
export function describeSmtpLoginError(probe: SmtpProbe, smtpUrl: string): string[] {
  const err = probe.login!.error!;
  return [
    `${probe.server} refused the login as "${probe.login!.user}": ${err.response ?? err.message}`,
    `SMTP_URL=${redactUrl(smtpUrl)}. Check the user name and password in SMTP_URL (%-escape special characters).`,
  ];
}
