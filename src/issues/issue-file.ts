import { parse as parseYaml } from 'yaml';
import type { IssueInput } from './authoring.js';

export class IssueFileError extends Error {}

/**
 * An issue kept as a Markdown file, the way static-site editors keep posts: YAML front matter
 * with `subject` (and optionally `preheader`) between two `---` lines, then the Markdown.
 */
export function parseIssueFile(source: string): IssueInput {
  const text = source.replace(/^\uFEFF/, '').replace(/\r\n?/g, '\n');
  const m = /^---\n([\s\S]*?)\n---(?:\n|$)/.exec(text);
  if (!m) throw new IssueFileError('the file must start with front matter: a "---" line, "subject: …", and another "---" line');
  let meta: unknown;
  try {
    meta = parseYaml(m[1]!);
  } catch (err) {
    throw new IssueFileError(`the front matter is not valid YAML: ${(err as Error).message}`);
  }
  if (meta === null || typeof meta !== 'object' || Array.isArray(meta)) throw new IssueFileError('the front matter must be "key: value" lines');
  const { subject, preheader, ...rest } = meta as Record<string, unknown>;
  const unknown = Object.keys(rest);
  if (unknown.length > 0) throw new IssueFileError(`unknown front matter field: ${unknown.join(', ')} (known: subject, preheader)`);
  if (typeof subject !== 'string' || subject.trim() === '') throw new IssueFileError('the front matter needs a "subject"');
  if (preheader !== undefined && typeof preheader !== 'string') throw new IssueFileError('"preheader" must be text');
  return { subject, preheader, markdown: text.slice(m[0].length) };
}
