import { domainToASCII, domainToUnicode } from 'node:url';
import validator from 'validator';

export type EmailCheck = { ok: true; email: string; normalized: string } | { ok: false; reason: string };

// Anything that could end a header line or smuggle a second address or header.
const FORBIDDEN = /[\u0000-\u001f\u007f\u0085\u2028\u2029,;<>()[\]\\"]/;

// Invisible formatting characters (zero-width space and joiners, soft hyphen, byte-order mark,
// bidirectional overrides). IDNA mapping silently drops some of them, so an address could be
// stored and shown with hidden or reordered text yet deliver somewhere else.
const INVISIBLE = /\p{Cf}/u;

// IDNA2008 allows letters, marks, digits and hyphens in a label; symbols such as emoji are not
// valid in a domain name even though the lenient UTS #46 mapping will encode them.
const LABEL = /^[\p{L}\p{M}\p{Nd}-]+$/u;
// Top-level domains are letters only, in ASCII or (for IDN TLDs) in one script.
const TLD = /^[\p{L}\p{M}]{2,63}$/u;

/** Longer than this cannot be an address; rejected before any further work on it. */
const INPUT_MAX_LENGTH = 1024;

/**
 * Validates an address a reader typed and returns it trimmed (for display) and normalised
 * (lower case, IDN domain in ASCII: the identity we deduplicate on). Syntax checking is
 * validator.js's; the limits around it (length, header-injection and invisible characters,
 * ASCII local part, IDNA2008-style domain labels) are ours.
 */
export function checkEmail(input: unknown): EmailCheck {
  if (input === undefined || input === null) return { ok: false, reason: 'email is required' };
  if (typeof input !== 'string') return { ok: false, reason: 'email must be a string' };
  if (input.length > INPUT_MAX_LENGTH) return { ok: false, reason: 'email must be at most 254 characters' };
  // Checked before trimming: a trailing CR or LF is an injection attempt, not stray whitespace.
  if (FORBIDDEN.test(input)) return { ok: false, reason: 'email contains characters that are not allowed in an address' };
  if (INVISIBLE.test(input)) return { ok: false, reason: 'email contains invisible characters (such as zero-width or text-direction marks)' };
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
  const asciiTyped = /^[\x21-\x7e]+$/.test(domainPart);
  // A non-ASCII domain is shown in its canonical Unicode form (fullwidth letters and ideographic
  // full stops mapped), so the address we display is the one we deduplicate and deliver to.
  const unicodeDomain = domainToUnicode(asciiDomain);
  const labels = unicodeDomain.split('.');
  if (!labels.every((l) => LABEL.test(l))) return { ok: false, reason: 'the domain is not valid' };
  if (labels.length < 2 || !TLD.test(labels[labels.length - 1]!)) return { ok: false, reason: 'the domain must end with a top-level domain such as .com' };
  const display = `${local}@${asciiTyped ? domainPart : unicodeDomain}`;
  const normalized = `${local.toLowerCase()}@${asciiDomain}`;
  if (normalized.length > 254 || display.length > 254) return { ok: false, reason: 'email must be at most 254 characters' };
  if (
    !validator.isEmail(normalized, {
      allow_display_name: false,
      require_tld: true,
      allow_ip_domain: false,
      allow_utf8_local_part: false,
      ignore_max_length: false,
    })
  ) {
    return { ok: false, reason: 'email must look like name@example.com' };
  }
  return { ok: true, email: display, normalized };
}

/**
 * An address as it goes to the SMTP relay (RCPT TO) and into the `To` header. `smtpUtf8`: the
 * address can only travel with the SMTPUTF8 extension (RFC 6531).
 */
export type TransportAddress = { address: string; smtpUtf8: boolean };

const ASCII = /^[\x00-\x7f]*$/;

/**
 * The wire form of a stored address (`subscribers.email`, the address as typed, its domain shown
 * in Unicode): the local part exactly as typed (only the receiving server may fold its case) and
 * the domain as ASCII A-labels (`bücher.example` → `xn--bcher-kva.example`), so any relay takes
 * it and the message stays 7-bit. A non-ASCII local part has no ASCII form: it needs SMTPUTF8
 * end to end, and then the domain stays in Unicode beside it, as RFC 6531 allows.
 */
export function transportAddress(email: string): TransportAddress {
  const at = email.lastIndexOf('@');
  const local = email.slice(0, at);
  const domain = email.slice(at + 1);
  if (!ASCII.test(local)) return { address: email, smtpUtf8: true };
  if (ASCII.test(domain)) return { address: email, smtpUtf8: false };
  // A stored address passed checkEmail, so its domain converts; if one somehow does not, only
  // SMTPUTF8 could carry it.
  const ascii = domainToASCII(domain);
  return ascii ? { address: `${local}@${ascii}`, smtpUtf8: false } : { address: email, smtpUtf8: true };
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
