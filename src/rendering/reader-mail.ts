import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { compileMjml } from './mjml.js';
import { fill, parseTemplate, type Template } from './template.js';

export const emailsDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../emails');

export const readerMailKinds = ['confirmation', 'welcome', 'data-link'] as const;
export type ReaderMailTemplateName = (typeof readerMailKinds)[number];

type CompiledReaderMail = { subject: Template; html: Template; text: Template };
export type ReaderMailTemplates = Record<ReaderMailTemplateName, CompiledReaderMail>;
export type RenderedMail = { subject: string; html: string; text: string };

/**
 * Loads `emails/<name>.mjml` and `emails/<name>.txt` (whose first line is `Subject: …`) and
 * compiles the MJML once. A branded copy of emails/ (EMAILS_DIR) made before a kind of mail
 * existed lacks its files: that kind comes from the bundled emails/.
 */
export async function loadReaderMailTemplates(dir = emailsDir): Promise<ReaderMailTemplates> {
  const entries = await Promise.all(
    readerMailKinds.map(async (name) => {
      const own = path.join(dir, `${name}.mjml`);
      const from = dir !== emailsDir && !existsSync(own) && !existsSync(path.join(dir, `${name}.txt`)) ? emailsDir : dir;
      const mjmlPath = path.join(from, `${name}.mjml`);
      const [mjml, txt] = await Promise.all([readFile(mjmlPath, 'utf8'), readFile(path.join(from, `${name}.txt`), 'utf8')]);
      const m = /^Subject: (.*)\r?\n\r?\n/.exec(txt);
      if (!m) throw new Error(`emails/${name}.txt must start with a "Subject: …" line and a blank line`);
      const html = await compileMjml(mjml, mjmlPath);
      return [name, { subject: parseTemplate(m[1]!, false), html: parseTemplate(html, true), text: parseTemplate(txt.slice(m[0].length), false) }] as const;
    }),
  );
  return Object.fromEntries(entries) as ReaderMailTemplates;
}

export function renderReaderMail(templates: ReaderMailTemplates, name: ReaderMailTemplateName, vars: Record<string, string>): RenderedMail {
  const t = templates[name];
  return { subject: fill(t.subject, vars), html: fill(t.html, vars), text: fill(t.text, vars) };
}
