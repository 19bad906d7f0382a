/**
 * Reads RFC 5322-style field blocks, the syntax shared by message headers, `message/delivery-status`
 * (RFC 3464) and `message/feedback-report` (RFC 5965). Tolerant by design: these come from other
 * people's mail servers, so a line that is not a field is skipped rather than rejected.
 */

/** One field, name lower-cased, value unfolded and trimmed. */
export type Field = { name: string; value: string };

/** Longest value kept for one field: a report is untrusted input and may be huge. */
const MAX_VALUE = 2000;

/** Parses one block of fields; stops at the first blank line. */
export function parseFields(text: string): Field[] {
  return parseGroups(text, 1)[0] ?? [];
}

/**
 * Splits `text` into blocks of fields separated by blank lines (a delivery-status part is one
 * per-message block then one block per recipient). Empty blocks are dropped.
 */
export function parseGroups(text: string, maxGroups = 1000): Field[][] {
  const groups: Field[][] = [];
  let current: Field[] = [];
  let last: Field | undefined;
  for (const line of text.split(/\r?\n/)) {
    if (line.trim() === '') {
      if (current.length > 0) {
        groups.push(current);
        if (groups.length >= maxGroups) return groups;
      }
      current = [];
      last = undefined;
      continue;
    }
    if (/^[ \t]/.test(line)) {
      // A continuation line (folding) belongs to the field above it.
      if (last && last.value.length < MAX_VALUE) last.value = `${last.value} ${line.trim()}`.slice(0, MAX_VALUE);
      continue;
    }
    const m = /^([!-9;-~]{1,100}):[ \t]*(.*)$/.exec(line);
    if (!m) {
      last = undefined;
      continue;
    }
    last = { name: m[1]!.toLowerCase(), value: m[2]!.trim().slice(0, MAX_VALUE) };
    current.push(last);
  }
  if (current.length > 0 && groups.length < maxGroups) groups.push(current);
  return groups;
}

/** The value of the first field called `name` (lower case), or null. */
export function field(fields: Field[], name: string): string | null {
  const found = fields.find((f) => f.name === name);
  return found && found.value !== '' ? found.value : null;
}

/** Drops the `type;` prefix of typed fields (`rfc822; a@b`, `dns; mx.example.net`, `smtp; 550 …`). */
export function untyped(value: string | null): string | null {
  if (value === null) return null;
  const m = /^[a-z0-9-]{1,40}\s*;\s*(.*)$/is.exec(value);
  const rest = (m ? m[1]! : value).trim();
  return rest === '' ? null : rest;
}

/** The bare address in `Name <a@b>`, `<a@b>` or `a@b`, or null when there is none. */
export function bareAddress(value: string | null): string | null {
  if (value === null) return null;
  const angled = /<([^<>\s]+@[^<>\s]+)>/.exec(value);
  if (angled) return angled[1]!;
  const plain = /(?:^|[\s;:,])([^<>\s;:,"]+@[^<>\s;:,"]+)/.exec(value);
  return plain ? plain[1]!.replace(/[.]+$/, '') : null;
}

/**
 * Decodes a part's bytes: UTF-8 when valid (RFC 6533 global reports, and most modern servers),
 * otherwise Latin-1, which never fails and keeps ASCII field names readable.
 */
export function decodeText(bytes: Buffer): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return bytes.toString('latin1');
  }
}
