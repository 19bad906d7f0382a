import { X509Certificate, createVerify } from 'node:crypto';
import {
  type Json,
  type JsonObject,
  type ProviderEvent,
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
  str,
  unauthorized,
  unavailable,
} from './event-parsing.js';
import { statusCode } from '../status-code.js';

// Amazon SES notifications delivered by SNS over HTTPS. SNS signs every message with the key of a
// certificate it names in SigningCertURL; we only fetch that URL when it is an https URL on an SNS
// host, so a forged message cannot make us fetch (or trust) a certificate from anywhere else, and
// only for a topic we subscribed to, so a stranger's posts cost no outbound request at all.

/** Fetches a PEM certificate. Injected: the route passes a real HTTPS GET, tests a stub. */
export type CertificateFetcher = (url: string) => Promise<string>;

export type SesWebhookOptions = {
  fetchCertificate: CertificateFetcher;
  /** When non-empty, messages from any other topic are refused (AWS recommends checking this). */
  topicArns?: readonly string[];
  /** Certificates kept in memory (by URL); SNS rotates them rarely. */
  cacheSize?: number;
  now?: () => Date;
};

export type SesSubscription = {
  ok: true;
  kind: 'subscription';
  type: 'SubscriptionConfirmation' | 'UnsubscribeConfirmation';
  topicArn: string;
  /** Host-validated: GET it to confirm the subscription. */
  subscribeUrl: string;
  token: string | null;
};

export type SesNotification = { ok: true; kind: 'notification'; topicArn: string; events: ProviderEvent[] };
export type SesResult = SesSubscription | SesNotification | Rejected;

export type SesWebhook = { verify(rawBody: RawBody, headers?: WebhookHeaders): Promise<SesResult> };

// sns.<region>.amazonaws.com, a region being like eu-west-1 or us-gov-west-1; China's regions
// (cn-north-1) are under amazonaws.com.cn. Not any other label (sns.s3.amazonaws.com).
const SNS_HOST = /^sns\.(?:[a-z]{2}(?:-gov)?-[a-z]+-\d{1,2}\.amazonaws\.com|cn-[a-z]+-\d{1,2}\.amazonaws\.com\.cn)$/;
const TYPES = ['Notification', 'SubscriptionConfirmation', 'UnsubscribeConfirmation'] as const;
type SnsType = (typeof TYPES)[number];

/** An https URL on `sns.<region>.amazonaws.com` (`.com.cn` in China) with no credentials or odd port, or null. */
function snsUrl(value: unknown, { pem = false } = {}): URL | null {
  if (typeof value !== 'string') return null;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return null;
  }
  if (url.protocol !== 'https:' || url.username || url.password || url.port) return null;
  if (!SNS_HOST.test(url.hostname)) return null;
  if (pem && !url.pathname.endsWith('.pem')) return null;
  return url;
}

/** The text SNS signs: "Name\nValue\n" for the documented fields in their documented order. */
function snsStringToSign(message: JsonObject, type: SnsType): string | null {
  const fields =
    type === 'Notification'
      ? ['Message', 'MessageId', 'Subject', 'Timestamp', 'TopicArn', 'Type']
      : ['Message', 'MessageId', 'SubscribeURL', 'Timestamp', 'Token', 'TopicArn', 'Type'];
  let out = '';
  for (const name of fields) {
    const value = message[name];
    if (value === undefined || value === null) {
      if (name === 'Subject') continue; // the only optional one
      return null;
    }
    if (typeof value !== 'string') return null;
    out += `${name}\n${value}\n`;
  }
  return out;
}

export function createSesWebhook(options: SesWebhookOptions): SesWebhook {
  const cacheSize = options.cacheSize ?? 16;
  const now = options.now ?? (() => new Date());
  const topics = new Set(options.topicArns ?? []);
  // Promise per URL, so concurrent deliveries share one fetch; a failed fetch is forgotten.
  const cache = new Map<string, Promise<X509Certificate>>();

  function certificate(url: string): Promise<X509Certificate> {
    const hit = cache.get(url);
    if (hit) return hit;
    const pending = options.fetchCertificate(url).then((pem) => new X509Certificate(pem));
    pending.catch(() => cache.delete(url));
    cache.set(url, pending);
    while (cache.size > cacheSize) cache.delete(cache.keys().next().value!);
    return pending;
  }

  async function verify(rawBody: RawBody, headers?: WebhookHeaders): Promise<SesResult> {
    const parsed = parseJson(bodyText(rawBody));
    if (!parsed.ok) return parsed;
    const msg = parsed.value;
    if (!isObject(msg)) return malformed('SNS message is not a JSON object');
    const type = msg.Type;
    if (typeof type !== 'string' || !(TYPES as readonly string[]).includes(type)) {
      return malformed('SNS message has no known Type');
    }
    const snsType = type as SnsType;
    const declared = header(headers, 'x-amz-sns-message-type');
    if (declared !== undefined && declared !== snsType) {
      return malformed('x-amz-sns-message-type header does not match the message Type');
    }
    const topicArn = str(msg.TopicArn);
    const messageId = str(msg.MessageId);
    if (!topicArn || !messageId) return malformed('SNS message lacks TopicArn or MessageId');
    // Before anything is fetched: a message naming another topic is refused whether or not its
    // signature is good (SNS signs for any AWS account's topic), so checking the signature first
    // would only let anyone make us fetch certificates. TopicArn is signed: once the signature
    // checks out below, the topic is proven too.
    if (topics.size > 0 && !topics.has(topicArn)) return unauthorized('SNS topic is not one we subscribed to');

    // Authenticity next; nothing else in the message is trusted before the signature checks out.
    const version = msg.SignatureVersion;
    const algorithm = version === '1' ? 'RSA-SHA1' : version === '2' ? 'RSA-SHA256' : null;
    if (!algorithm) return unauthorized('SNS SignatureVersion missing or unsupported');
    const signature = str(msg.Signature);
    if (!signature) return unauthorized('SNS message is not signed');
    const certUrl = snsUrl(msg.SigningCertURL, { pem: true });
    if (!certUrl) return unauthorized('SigningCertURL is not an https URL on an SNS host');
    const toSign = snsStringToSign(msg, snsType);
    if (toSign === null) return malformed('SNS message lacks a field that is signed');

    let cert: X509Certificate;
    try {
      cert = await certificate(certUrl.href);
    } catch {
      return unavailable('could not fetch or read the SNS signing certificate');
    }
    const at = now();
    if (at < new Date(cert.validFrom) || at > new Date(cert.validTo)) {
      return unauthorized('SNS signing certificate is not valid now');
    }
    let good: boolean;
    try {
      good = createVerify(algorithm).update(toSign, 'utf8').verify(cert.publicKey, signature, 'base64');
    } catch {
      good = false;
    }
    if (!good) return unauthorized('SNS signature does not match');

    if (snsType !== 'Notification') {
      const subscribeUrl = snsUrl(msg.SubscribeURL);
      if (!subscribeUrl) return unauthorized('SubscribeURL is not an https URL on an SNS host');
      return { ok: true, kind: 'subscription', type: snsType, topicArn, subscribeUrl: subscribeUrl.href, token: str(msg.Token) };
    }

    const inner = typeof msg.Message === 'string' ? parseJson(msg.Message) : null;
    if (!inner?.ok || !isObject(inner.value)) return malformed('SNS Message is not an SES notification');
    const events = sesEvents(inner.value, messageId);
    if (!Array.isArray(events)) return events;
    return { ok: true, kind: 'notification', topicArn, events };
  }

  return { verify };
}

/**
 * Maps an SES notification (identity notifications use `notificationType`, configuration-set
 * event publishing uses `eventType`) to events: one per bounced / complained recipient.
 * Other types (Delivery, Send, Open, the first "AmazonSnsSubscriptionSucceeded") give none.
 */
function sesEvents(n: JsonObject, snsMessageId: string): ProviderEvent[] | Rejected {
  const kind = str(n.notificationType) ?? str(n.eventType);
  if (kind !== 'Bounce' && kind !== 'Complaint') return [];
  const mail = isObject(n.mail) ? n.mail : {};
  const base = {
    provider: 'ses' as const,
    messageToken: headerListToken(mail.headers, 'name', 'value'),
    providerMessageId: str(mail.messageId),
  };

  if (kind === 'Bounce') {
    const bounce = n.bounce;
    if (!isObject(bounce) || !Array.isArray(bounce.bouncedRecipients)) {
      return malformed('SES bounce lacks bounce.bouncedRecipients');
    }
    const type = bounce.bounceType === 'Permanent' ? 'hard' : bounce.bounceType === 'Transient' ? 'soft' : 'other';
    const occurredAt = dateFrom(bounce.timestamp);
    return recipients(bounce.bouncedRecipients).map(([recipient, r]) => {
      const diagnostic = str(r.diagnosticCode);
      return {
        ...base,
        eventId: `${snsMessageId}:${recipient}`,
        type,
        recipient,
        status: str(r.status) ?? statusCode(diagnostic),
        diagnostic,
        occurredAt,
      };
    });
  }

  const complaint = n.complaint;
  if (!isObject(complaint) || !Array.isArray(complaint.complainedRecipients)) {
    return malformed('SES complaint lacks complaint.complainedRecipients');
  }
  const occurredAt = dateFrom(complaint.timestamp);
  const diagnostic = str(complaint.complaintFeedbackType);
  return recipients(complaint.complainedRecipients).map(([recipient]) => ({
    ...base,
    eventId: `${snsMessageId}:${recipient}`,
    type: 'complaint' as const,
    recipient,
    status: null,
    diagnostic,
    occurredAt,
  }));
}

function recipients(list: Json[]): Array<[string, JsonObject]> {
  const out: Array<[string, JsonObject]> = [];
  for (const r of list) {
    const email = isObject(r) ? normaliseEmail(r.emailAddress) : null;
    if (email && isObject(r)) out.push([email, r]);
  }
  return out;
}
