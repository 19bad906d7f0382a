import { domainToASCII } from 'node:url';
import validator from 'validator';

export type EmailCheck = { ok: true; email: string; normalized: string } | { ok: false; reason: string };

// Anything that could end a header line or smuggle a second address or header.
const FORBIDDEN = /[\u0000-\u001f\u007f\u0085\u2028\u2029,;<>()[\]\\"]/;

/**
 * Validates an address a reader typed and returns it trimmed (for display) and normalised
 * (lower case, IDN domain in ASCII: the identity we deduplicate on). Syntax checking is
 * validator.js's; the limits around it (length, header-injection characters, ASCII local
 * part) are ours.
 */
export function checkEmail(input: unknown): EmailCheck {
  if (typeof input !== 'string') return { ok: false, reason: 'email must be a string' };
  // Checked before trimming: a trailing CR or LF is an injection attempt, not stray whitespace.
  if (FORBIDDEN.test(input)) return { ok: false, reason: 'email contains characters that are not allowed in an address' };
  const email = input.normalize('NFC').replace(/^ +| +$/g, '');
  if (email === '') return { ok: false, reason: 'email is required' };
  if (/\s/.test(email)) return { ok: false, reason: 'email must not contain spaces' };
  const at = email.lastIndexOf('@');
  if (at < 1 || at === email.length - 1) return { ok: false, reason: 'email must look like name@example.com' };
  const local = email.slice(0, at);
  const domainPart = email.slice(at + 1);
  // Non-ASCII local parts need SMTPUTF8 end to end, which most relays do not offer.
  if (!/^[\x21-\x7e]+$/.test(local)) return { ok: false, reason: 'the part before @ must be plain ASCII' };
  if (local.length > 64) return { ok: false, reason: 'the part before @ must be at most 64 characters' };
  const asciiDomain = domainToASCII(domainPart.toLowerCase());
  if (!asciiDomain) return { ok: false, reason: 'the domain is not valid' };
  const normalized = `${local.toLowerCase()}@${asciiDomain}`;
  if (normalized.length > 254 || email.length > 254) return { ok: false, reason: 'email must be at most 254 characters' };
  if (!validator.isEmail(normalized, { allow_display_name: false, require_tld: true, allow_ip_domain: false, allow_utf8_local_part: false, ignore_max_length: false })) {
    return { ok: false, reason: 'email must look like name@example.com' };
  }
  return { ok: true, email, normalized };
}

/** Names are shown in emails and pages: no control or invisible formatting characters, capped. */
export const NAME_MAX_LENGTH = 100;

export function cleanName(input: unknown): string | null {
  if (typeof input !== 'string') return null;
  const cleaned = input
    .normalize('NFC')
    .replace(/[\p{Cc}\p{Cf}\u2028\u2029]/gu, ' ')
    .replace(/\s+/g, ' ')
    .trim();
  if (cleaned === '') return null;
  // Cut by code points so a surrogate pair is never split.
  return Array.from(cleaned).slice(0, NAME_MAX_LENGTH).join('');
}
