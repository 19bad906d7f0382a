import { smtpResponseCode } from './mailer.js';

/**
 * What an SMTP failure means for the message and for the send:
 * - `permanent`: the relay refused this recipient or this message for good (5xx at RCPT TO or
 *   DATA): a hard bounce, never retried.
 * - `temporary`: this recipient or message may go through later (4xx at RCPT TO or DATA, such as
 *   a full mailbox or greylisting): retried with backoff, then `failed` (one soft bounce).
 * - `throttled`: the relay refused this one transaction to pace us (421 in a transaction, any
 *   4xx at MAIL FROM, a refusal that says it is throttling). Nobody's fault and no outage: the
 *   message is backed off without spending an attempt, and the sending slows down.
 * - `relay`: the relay could not be used for this message (connection refused, reset or timed
 *   out, greeting, login or sender refused). One of these backs off the message; only a run of
 *   them makes the relay unavailable (see relay-pacing.ts).
 */
export type SmtpFailure = {
  kind: 'permanent' | 'temporary' | 'throttled' | 'relay';
  /** Reply code, when the relay answered. */
  code?: number;
  /** RFC 3463 enhanced status code (e.g. 5.1.1), when the reply carried one. */
  enhanced?: string;
  response: string;
};

type NodemailerError = Error & { code?: string; responseCode?: number; response?: string; command?: string };

// A transaction: nodemailer names the command whose reply failed it (MAIL FROM, RCPT TO, DATA).
const TRANSACTION_COMMANDS = /^(MAIL FROM|RCPT TO|DATA)\b/i;
const RECIPIENT_COMMANDS = /^(RCPT TO|DATA)\b/i;
// A 4xx that names throttling rather than the recipient, as some relays word it at DATA
// (Amazon SES: "454 Throttling failure: Maximum sending rate exceeded").
const THROTTLING_TEXT = /throttl|rate limit|sending rate|too many (messages|connections)/i;

export function classifySmtpError(err: unknown): SmtpFailure {
  const e = err as NodemailerError;
  const response = (e.response ?? e.message ?? String(err)).slice(0, 1000);
  const code = smtpResponseCode(err);
  const enhanced = /^\d{3}[ -](\d\.\d{1,3}\.\d{1,3})\b/.exec(response)?.[1];
  const failure = (kind: SmtpFailure['kind']): SmtpFailure => ({ kind, code, enhanced, response });
  const command = e.command ?? '';
  // A 421 ends the session. Mid-transaction nodemailer reports it against the command it
  // answered, or (at RCPT TO, whose replies come pipelined) as the connection closed by the
  // server ("CONN", ECONNECTION, with the 421 as the response); a 421 greeting is EPROTOCOL.
  if (code === 421 && (TRANSACTION_COMMANDS.test(command) || (command === 'CONN' && e.code === 'ECONNECTION'))) return failure('throttled');
  // No reply at all (refused, reset, timed out, dropped), or no transaction yet (greeting, EHLO,
  // STARTTLS, AUTH): the relay, not this message.
  if (code === undefined || !TRANSACTION_COMMANDS.test(command)) return failure('relay');
  const temporary = enhanced ? enhanced.startsWith('4') : code < 500;
  if (!RECIPIENT_COMMANDS.test(command)) {
    // MAIL FROM concerns our sender, never the reader: a 4xx paces us, a 5xx (sender refused,
    // authentication required) will refuse every message until the operator fixes it.
    return failure(temporary ? 'throttled' : 'relay');
  }
  if (temporary && THROTTLING_TEXT.test(response)) return failure('throttled');
  return failure(temporary ? 'temporary' : 'permanent');
}
