import { smtpResponseCode } from './mailer.js';

/**
 * What an SMTP failure means for the message and for the send:
 * - `permanent`: the relay refused this recipient or this message for good (5xx at RCPT TO or
 *   DATA): a hard bounce, never retried.
 * - `temporary`: this message may go through later (4xx at RCPT TO or DATA): retried with
 *   backoff, then `failed`.
 * - `relay`: the relay itself is unusable (refused or timed-out connection, 421, or a refusal of
 *   our greeting, login or sender): no reader is at fault, so the send waits for the relay
 *   instead of spending anyone's retries.
 */
export type SmtpFailure = {
  kind: 'permanent' | 'temporary' | 'relay';
  /** Reply code, when the relay answered. */
  code?: number;
  /** RFC 3463 enhanced status code (e.g. 5.1.1), when the reply carried one. */
  enhanced?: string;
  response: string;
};

type NodemailerError = Error & { code?: string; responseCode?: number; response?: string; command?: string };

// Commands whose refusal concerns one recipient or one message rather than the relay.
const MESSAGE_COMMANDS = /^(RCPT TO|DATA)\b/i;
// nodemailer reports a refused sender as EENVELOPE too, but at MAIL FROM: that is ours to fix.
const RELAY_COMMANDS = /^(CONN|EHLO|HELO|LHLO|STARTTLS|AUTH|MAIL FROM)\b/i;

export function classifySmtpError(err: unknown): SmtpFailure {
  const e = err as NodemailerError;
  const response = (e.response ?? e.message ?? String(err)).slice(0, 1000);
  const code = smtpResponseCode(err);
  const enhanced = /^\d{3}[ -](\d\.\d{1,3}\.\d{1,3})\b/.exec(response)?.[1];
  if (code === undefined || code === 421) return { kind: 'relay', code, enhanced, response };
  // nodemailer names the command that failed; a rejected recipient is EENVELOPE at RCPT TO.
  const command = e.command ?? '';
  const aboutMessage = !RELAY_COMMANDS.test(command) && (MESSAGE_COMMANDS.test(command) || e.code === 'EENVELOPE' || e.code === 'EMESSAGE');
  if (!aboutMessage) return { kind: 'relay', code, enhanced, response };
  const permanent = enhanced ? enhanced.startsWith('5') : code >= 500;
  return { kind: permanent ? 'permanent' : 'temporary', code, enhanced, response };
}
