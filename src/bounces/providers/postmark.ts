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
  headerListToken,
  isObject,
  malformed,
  normaliseEmail,
  parseJson,
  safeEqual,
  str,
  tokenIn,
  unauthorized,
} from './event-parsing.js';
import { statusCode } from '../status-code.js';

// Postmark does not sign webhooks; its docs recommend HTTP basic auth credentials in the webhook
// URL (https://user:password@host/webhooks/bounces/postmark), which arrive as an Authorization
// header. One webhook request carries one record.

export type PostmarkWebhookOptions = { user: string; password: string };
export type PostmarkResult = { ok: true; events: ProviderEvent[] } | Rejected;
export type PostmarkWebhook = { verify(rawBody: RawBody, headers: WebhookHeaders): PostmarkResult };

export function createPostmarkWebhook(options: PostmarkWebhookOptions): PostmarkWebhook {
  if (!options.user || !options.password) throw new Error('Postmark webhook needs a user and a password');
  const expected = `${options.user}:${options.password}`;

  return {
    verify(rawBody, headers) {
      const auth = header(headers, 'authorization');
      const m = auth ? /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(auth) : null;
      if (!m) return unauthorized('missing basic authorization');
      // Compare the whole "user:password" in constant time (both hashed, so length leaks nothing).
      if (!safeEqual(Buffer.from(m[1]!, 'base64').toString('utf8'), expected)) {
        return unauthorized('wrong webhook credentials');
      }
      const text = bodyText(rawBody);
      const parsed = parseJson(text);
      if (!parsed.ok) return parsed;
      return postmarkEvents(parsed.value, text);
    },
  };
}

const TYPES: Record<string, ProviderEventType> = {
  HardBounce: 'hard',
  SoftBounce: 'soft',
  Transient: 'soft',
  SpamComplaint: 'complaint',
};

/**
 * Bounce and SpamComplaint records give one event; other record types (Delivery, Open…) none.
 * Pass the raw text when there is one: Postmark IDs are 64-bit and JSON.parse rounds them.
 */
function postmarkEvents(record: Json, rawText?: string): PostmarkResult {
  if (!isObject(record)) return malformed('Postmark webhook body is not a JSON object');
  const recordType = str(record.RecordType);
  if (recordType !== 'Bounce' && recordType !== 'SpamComplaint') return { ok: true, events: [] };
  const id = exactId(record.ID, rawText);
  if (!id) return malformed(`Postmark ${recordType} record has no usable ID`);
  const type: ProviderEventType = recordType === 'SpamComplaint' ? 'complaint' : (TYPES[str(record.Type) ?? ''] ?? 'other');
  const details = str(record.Details);
  const description = str(record.Description);
  return {
    ok: true,
    events: [
      {
        provider: 'postmark',
        eventId: id,
        type,
        recipient: normaliseEmail(record.Email),
        messageToken: tokenIn(record.Metadata) ?? headerListToken(record.Headers, 'Name', 'Value'),
        providerMessageId: str(record.MessageID),
        status: statusCode(details),
        diagnostic: details ?? description,
        occurredAt: dateFrom(record.BouncedAt),
      },
    ],
  };
}

/** The ID's digits as sent; beyond 2^53 they are read from the raw text (the match must be unique). */
function exactId(parsed: Json | undefined, rawText: string | undefined): string | null {
  if (typeof parsed === 'string') return str(parsed);
  if (typeof parsed !== 'number' || !Number.isInteger(parsed)) return null;
  if (Number.isSafeInteger(parsed)) return String(parsed);
  if (rawText === undefined) return null;
  const candidates = new Set<string>();
  for (const m of rawText.matchAll(/"ID"\s*:\s*(\d+)(?![\d.eE])/g)) {
    if (Number(m[1]) === parsed) candidates.add(m[1]!);
  }
  return candidates.size === 1 ? [...candidates][0]! : null;
}
