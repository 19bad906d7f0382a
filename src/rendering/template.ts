import { escapeHtml } from './escape.js';

/**
 * A template with `{{name}}` placeholders, split once into literal parts and slots so that
 * filling it for a reader is a join, not a parse. HTML templates escape every value.
 */
export type Template = { parts: string[]; slots: string[]; escape: boolean };

const PLACEHOLDER = /\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}/g;

export function parseTemplate(source: string, escape: boolean): Template {
  const parts: string[] = [];
  const slots: string[] = [];
  let last = 0;
  for (const m of source.matchAll(PLACEHOLDER)) {
    parts.push(source.slice(last, m.index));
    slots.push(m[1]!);
    last = m.index! + m[0].length;
  }
  parts.push(source.slice(last));
  return { parts, slots, escape };
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
