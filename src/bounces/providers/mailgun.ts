import { createHmac, timingSafeEqual } from 'node:crypto';
import {
  type Json,
  type ProviderEvent,
  type ProviderEventType,
  type RawBody,
  type Rejected,
  bodyText,
  dateFrom,
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

// Mailgun puts its signature in the JSON body: {signature: {timestamp, token, signature},
// "event-data": {...}}, where signature = hex HMAC-SHA256(webhook signing key, timestamp + token).
// Mailgun also suggests refusing a token seen before; that needs storage, so the route does it
// (the returned `signatureToken` is what to remember, for as long as the tolerance).

export type MailgunWebhookOptions = { signingKey: string; toleranceSeconds?: number; now?: () => Date };
export type MailgunResult = { ok: true; events: ProviderEvent[]; signatureToken: string } | Rejected;
export type MailgunWebhook = { verify(rawBody: RawBody): MailgunResult };

export function createMailgunWebhook(options: MailgunWebhookOptions): MailgunWebhook {
  if (!options.signingKey) throw new Error('Mailgun webhook needs a signing key');
  const tolerance = options.toleranceSeconds ?? 300;
  const now = options.now ?? (() => new Date());

  return {
    verify(rawBody) {
      const parsed = parseJson(bodyText(rawBody));
      if (!parsed.ok) return parsed;
      const body = parsed.value;
      if (!isObject(body)) return malformed('Mailgun webhook body is not a JSON object');
      const sig = body.signature;
      if (!isObject(sig)) return unauthorized('Mailgun webhook has no signature');
      const timestamp = str(sig.timestamp);
      const token = str(sig.token);
      const signature = str(sig.signature);
      if (!timestamp || !token || !signature) return unauthorized('Mailgun signature is incomplete');
      if (!/^\d{1,12}$/.test(timestamp)) return unauthorized('Mailgun timestamp is not a number');
      if (!/^[0-9a-f]{64}$/i.test(signature)) return unauthorized('Mailgun signature is not a SHA-256 hex digest');
      const expected = createHmac('sha256', options.signingKey)
        .update(timestamp + token)
        .digest();
      if (!timingSafeEqual(expected, Buffer.from(signature, 'hex'))) return unauthorized('Mailgun signature does not match');
      if (!isFresh(Number(timestamp), now(), tolerance)) return unauthorized('Mailgun timestamp is stale');
      const mapped = mailgunEvents(body['event-data']);
      if (!mapped.ok) return mapped;
      return { ...mapped, signatureToken: token };
    },
  };
}

/** failed (permanent → hard, temporary → soft) and complained give one event; others none. */
function mailgunEvents(data: Json | undefined): { ok: true; events: ProviderEvent[] } | Rejected {
  if (!isObject(data)) return malformed('Mailgun webhook has no event-data');
  const event = str(data.event);
  let type: ProviderEventType;
  if (event === 'failed') {
    type = data.severity === 'permanent' ? 'hard' : data.severity === 'temporary' ? 'soft' : 'other';
  } else if (event === 'complained') {
    type = 'complaint';
  } else {
    return { ok: true, events: [] };
  }
  const eventId = str(data.id);
  if (!eventId) return malformed(`Mailgun ${event} event has no id`);
  const message = isObject(data.message) ? data.message : {};
  const headers = isObject(message.headers) ? message.headers : {};
  const delivery = isObject(data['delivery-status']) ? data['delivery-status'] : {};
  const diagnostic = str(delivery.message) ?? str(delivery.description) ?? str(data.reason);
  return {
    ok: true,
    events: [
      {
        provider: 'mailgun',
        eventId,
        type,
        recipient: normaliseEmail(data.recipient),
        messageToken: tokenIn(data['user-variables']) ?? tokenIn(headers),
        providerMessageId: str(headers['message-id']),
        status: statusCode(str(delivery['enhanced-code'])) ?? statusCode(diagnostic),
        diagnostic,
        occurredAt: dateFrom(data.timestamp),
      },
    ],
  };
}
