import { escapeHtml } from '../web/escape.js';

/**
 * A template with `{{name}}` placeholders, split once into literal parts and slots so that
 * filling it for a reader is a join, not a parse. HTML templates escape every value.
 */
export type Template = { parts: string[]; slots: string[]; escape: boolean };

// `{{name}}` is a slot filled for each reader; `{{@name}}` is bound once, when the template is
// parsed (an issue's content, its subject). A bound value is inserted as it is and never
// scanned for placeholders, so text an editor writes cannot become a slot.
const PLACEHOLDER = /\{\{\s*(@?)([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}/g;

export function parseTemplate(source: string, html: boolean, bound: Record<string, string> = {}): Template {
  const parts: string[] = [];
  const slots: string[] = [];
  let part = '';
  let last = 0;
  for (const m of source.matchAll(PLACEHOLDER)) {
    part += source.slice(last, m.index);
    last = m.index + m[0].length;
    if (m[1]) {
      part += boundValue(bound, m[2]!);
    } else {
      parts.push(part);
      slots.push(m[2]!);
      part = '';
    }
  }
  parts.push(part + source.slice(last));
  return { parts, slots, escape: html };
}

/** Substitutes only the `{{@name}}` placeholders, leaving reader slots in place. */
export function bindTemplate(source: string, bound: Record<string, string>): string {
  return source.replace(PLACEHOLDER, (whole, at: string, name: string) => (at ? boundValue(bound, name) : whole));
}

function boundValue(bound: Record<string, string>, name: string): string {
  const value = bound[name];
  if (value === undefined) throw new MissingVariableError(`template value "@${name}" has no value`);
  return value;
}

export class MissingVariableError extends Error {}

export function fill(template: Template, vars: Record<string, string>): string {
  let out = template.parts[0]!;
  for (let i = 0; i < template.slots.length; i++) {
    const value = vars[template.slots[i]!];
    if (value === undefined) throw new MissingVariableError(`template variable "${template.slots[i]}" has no value`);
    out += (template.escape ? escapeHtml(value) : value) + template.parts[i + 1]!;
  }
  return out;
}
