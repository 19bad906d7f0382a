import { createVerify } from 'node:crypto';
import { parsePublicKey } from '../../config/public-key.js';
import {
  type Json,
  type ProviderEvent,
  type ProviderEventType,
  type RawBody,
  type Rejected,
  type WebhookHeaders,
  bodyText,
  dateFrom,
  header,
  isFresh,
  isObject,
  malformed,
  normaliseEmail,
  parseJson,
  str,
  tokenIn,
  unauthorized,
} from './event-parsing.js';
import { statusCode } from '../status-code.js';

// SendGrid's Signed Event Webhook: an ECDSA P-256 / SHA-256 signature (base64 of DER) of
// `timestamp + rawBody`, in X-Twilio-Email-Event-Webhook-Signature, with the timestamp in
// X-Twilio-Email-Event-Webhook-Timestamp. The verification key shown in SendGrid's settings is
// base64 DER (SubjectPublicKeyInfo) without PEM framing. One request carries a batch of events.

const SIGNATURE_HEADER = 'X-Twilio-Email-Event-Webhook-Signature';
const TIMESTAMP_HEADER = 'X-Twilio-Email-Event-Webhook-Timestamp';

export type SendgridWebhookOptions = {
  /** Base64 DER (SPKI) as SendGrid shows it; a PEM "PUBLIC KEY" block is accepted too. */
  publicKey: string;
  toleranceSeconds?: number;
  now?: () => Date;
};

/** `ignored`: events of a bounce kind we had to skip because they lacked sg_event_id or email. */
export type SendgridResult = { ok: true; events: ProviderEvent[]; ignored: number } | Rejected;
export type SendgridWebhook = { verify(rawBody: RawBody, headers: WebhookHeaders): SendgridResult };

export function createSendgridWebhook(options: SendgridWebhookOptions): SendgridWebhook {
  // Parsed once, so a bad key fails at start-up rather than on the first webhook.
  const key = parsePublicKey(options.publicKey);
  if (key.asymmetricKeyType !== 'ec') throw new Error('SendGrid webhook key is not an EC public key');
  const tolerance = options.toleranceSeconds ?? 300;
  const now = options.now ?? (() => new Date());

  return {
    verify(rawBody, headers) {
      const signature = header(headers, SIGNATURE_HEADER);
      const timestamp = header(headers, TIMESTAMP_HEADER);
      if (!signature || !timestamp) return unauthorized('missing SendGrid signature or timestamp header');
      if (!/^\d{1,12}$/.test(timestamp.trim())) return unauthorized('SendGrid timestamp is not a number');
      if (!isFresh(Number(timestamp.trim()), now(), tolerance)) return unauthorized('SendGrid timestamp is stale');
      const body = typeof rawBody === 'string' ? Buffer.from(rawBody, 'utf8') : rawBody;
      let good: boolean;
      try {
        good = createVerify('sha256').update(timestamp).update(body).verify(key, signature.trim(), 'base64');
      } catch {
        good = false;
      }
      if (!good) return unauthorized('SendGrid signature does not match');
      const parsed = parseJson(bodyText(rawBody));
      if (!parsed.ok) return parsed;
      return sendgridEvents(parsed.value);
    },
  };
}

/**
 * bounce: SendGrid's `type` says which — "bounce" (permanent, hard) or "blocked" (the receiving
 * server refused for now, a soft bounce); deferred → soft; spamreport → complaint; dropped →
 * other (SendGrid never tried: the address is on one of its own suppression lists, the reason
 * says which). Other events (processed, delivered, open, click…) give none.
 */
function sendgridEvents(batch: Json): SendgridResult {
  if (!Array.isArray(batch)) return malformed('SendGrid webhook body is not a JSON array');
  const events: ProviderEvent[] = [];
  let ignored = 0;
  for (const e of batch) {
    if (!isObject(e)) return malformed('SendGrid webhook body holds a non-object event');
    const type = eventType(e.event, e.type);
    if (!type) continue;
    const eventId = str(e.sg_event_id);
    const recipient = normaliseEmail(e.email);
    if (!eventId || !recipient) {
      ignored++;
      continue;
    }
    const diagnostic = str(e.reason) ?? str(e.response);
    events.push({
      provider: 'sendgrid',
      eventId,
      type,
      recipient,
      // Custom args arrive as top-level keys; older unique_args as an object.
      messageToken: tokenIn(e) ?? tokenIn(e.unique_args) ?? tokenIn(e.custom_args),
      providerMessageId: str(e.sg_message_id),
      status: statusCode(str(e.status)) ?? statusCode(diagnostic),
      diagnostic,
      occurredAt: dateFrom(e.timestamp),
    });
  }
  return { ok: true, events, ignored };
}

function eventType(event: Json | undefined, bounceType: Json | undefined): ProviderEventType | null {
  switch (event) {
    case 'bounce':
      return bounceType === 'blocked' ? 'soft' : 'hard';
    case 'deferred':
      return 'soft';
    case 'spamreport':
      return 'complaint';
    case 'dropped':
      return 'other';
    default:
      return null;
  }
}
