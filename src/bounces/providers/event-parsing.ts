import { createHash, timingSafeEqual } from 'node:crypto';
import { tokenShaped } from '../../sending/message-tokens.js';

// The shape every provider webhook is mapped to, and the small helpers the four parsers share.
// Pure: no database, no network. The route verifies `messageToken` with MessageTokens before
// trusting it — here it is only checked for shape.

export type ProviderName = 'ses' | 'postmark' | 'sendgrid' | 'mailgun';
export type ProviderEventType = 'hard' | 'soft' | 'complaint' | 'other';

export type ProviderEvent = {
  provider: ProviderName;
  /** Stable per event (a redelivery carries the same id), for once-only recording. */
  eventId: string;
  type: ProviderEventType;
  recipient: string | null;
  /** Our X-Broadside-Message token when the payload carries our headers or custom args (shape-checked only). */
  messageToken: string | null;
  providerMessageId: string | null;
  /** Enhanced status code, e.g. 5.1.1. */
  status: string | null;
  diagnostic: string | null;
  occurredAt: Date | null;
};

/**
 * Why a webhook was refused. The route maps `unauthorized` → 401 (bad or missing credentials,
 * signature or a stale timestamp), `malformed` → 400 (the body is not what the provider sends) and
 * `unavailable` → 503 (we could not check it right now, e.g. the SNS certificate could not be
 * fetched; the provider retries).
 */
export type RejectReason = 'unauthorized' | 'malformed' | 'unavailable';
export type Rejected = { ok: false; reason: RejectReason; message: string };

export type RawBody = Buffer | string;
/** Node's IncomingHttpHeaders fits; names are matched case-insensitively. */
export type WebhookHeaders = Readonly<Record<string, string | readonly string[] | undefined>>;

/** Custom-arg / metadata / header names that may carry our token. */
const TOKEN_HEADER = 'x-broadside-message';
const TOKEN_KEYS = ['broadside_message', TOKEN_HEADER, 'broadside-message', 'broadsidemessage'];

export const unauthorized = (message: string): Rejected => ({ ok: false, reason: 'unauthorized', message });
export const malformed = (message: string): Rejected => ({ ok: false, reason: 'malformed', message });
export const unavailable = (message: string): Rejected => ({ ok: false, reason: 'unavailable', message });

export function header(headers: WebhookHeaders | undefined, name: string): string | undefined {
  if (!headers) return undefined;
  const wanted = name.toLowerCase();
  for (const [key, value] of Object.entries(headers)) {
    if (key.toLowerCase() !== wanted || value === undefined) continue;
    return typeof value === 'string' ? value : value[0];
  }
  return undefined;
}

export function bodyText(raw: RawBody): string {
  return typeof raw === 'string' ? raw : raw.toString('utf8');
}

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

export function parseJson(raw: string): { ok: true; value: Json } | Rejected {
  try {
    return { ok: true, value: JSON.parse(raw) as Json };
  } catch {
    return malformed('body is not valid JSON');
  }
}

export function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function str(value: unknown): string | null {
  if (typeof value === 'string') return value.trim() === '' ? null : value;
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  return null;
}

/** A token of our shape (`m<base36>-<16 hex>`), lower-cased, or null. */
export function tokenOf(value: unknown): string | null {
  if (typeof value !== 'string') return null;
  return tokenShaped(value.replace(/^\s*<|>\s*$/g, ''));
}

/** The first value under one of TOKEN_KEYS (any case) in a flat object that is one of our tokens. */
export function tokenIn(record: unknown): string | null {
  if (!isObject(record)) return null;
  for (const [key, value] of Object.entries(record)) {
    if (!TOKEN_KEYS.includes(key.toLowerCase())) continue;
    const t = tokenOf(Array.isArray(value) ? value[0] : value);
    if (t) return t;
  }
  return null;
}

export function dateFrom(value: unknown): Date | null {
  if (typeof value === 'number' && Number.isFinite(value)) return new Date(value * 1000);
  if (typeof value === 'string' && value.trim() !== '') {
    const d = /^\d+(\.\d+)?$/.test(value) ? new Date(Number(value) * 1000) : new Date(value);
    return Number.isNaN(d.getTime()) ? null : d;
  }
  return null;
}

export function normaliseEmail(value: unknown): string | null {
  const s = str(value);
  return s ? s.trim().toLowerCase() : null;
}

/** Constant-time equality of two secrets of any length (both are hashed first). */
export function safeEqual(a: string | Buffer, b: string | Buffer): boolean {
  const ha = createHash('sha256').update(a).digest();
  const hb = createHash('sha256').update(b).digest();
  return timingSafeEqual(ha, hb);
}

/** Seconds-since-epoch timestamp within `toleranceSeconds` of now (either side: clocks drift). */
export function isFresh(timestampSeconds: number, now: Date, toleranceSeconds: number): boolean {
  return Math.abs(now.getTime() / 1000 - timestampSeconds) <= toleranceSeconds;
}

/**
 * Our token from a provider's list of the original's headers, `[{name, value}]` with the key
 * names the provider uses (SES: name/value, Postmark: Name/Value).
 */
export function headerListToken(headers: Json | undefined, nameKey: string, valueKey: string): string | null {
  if (!Array.isArray(headers)) return null;
  for (const h of headers) {
    const name = isObject(h) ? h[nameKey] : undefined;
    if (typeof name === 'string' && name.toLowerCase() === TOKEN_HEADER) {
      const t = tokenOf((h as JsonObject)[valueKey]);
      if (t) return t;
    }
  }
  return null;
}
