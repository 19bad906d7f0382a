import { parse as parseYaml } from 'yaml';
import type { IssueInput } from './authoring.js';

export class IssueFileError extends Error {}

/** An issue file's content: the issue, and the id of the issue it was published as, when the file keeps it. */
export type IssueFile = IssueInput & { id?: number };

/**
 * An issue kept as a Markdown file, the way static-site editors keep posts: YAML front matter
 * with `subject` (and optionally `preheader`) between two `---` lines, then the Markdown.
 * `broadside publish` keeps the issue's `id` there, to update that issue the next time.
 */
export function parseIssueFile(source: string): IssueFile {
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
  const { subject, preheader, id, ...rest } = meta as Record<string, unknown>;
  const unknown = Object.keys(rest);
  if (unknown.length > 0) throw new IssueFileError(`unknown front matter field: ${unknown.join(', ')} (known: subject, preheader, id)`);
  if (id !== undefined && !(typeof id === 'number' && Number.isSafeInteger(id) && id > 0)) {
    throw new IssueFileError('"id" must be the number of an issue (broadside publish writes it)');
  }
  if (typeof subject !== 'string' || subject.trim() === '') throw new IssueFileError('the front matter needs a "subject"');
  if (preheader !== undefined && typeof preheader !== 'string') throw new IssueFileError('"preheader" must be text');
  return { subject, preheader, markdown: text.slice(m[0].length), ...(id === undefined ? {} : { id }) };
}

/**
 * The file with `id: <id>` in its front matter: the line replaced when there is one, else added
 * right after the opening `---`. Everything else stays byte for byte (BOM, line ends, comments).
 * Undefined when the file has no front matter.
 */
export function withIssueId(source: string, id: number): string | undefined {
  const m = /^(\uFEFF?---(\r?\n))([\s\S]*?)(\r?\n---(?:\r?\n|$))/.exec(source);
  if (!m) return undefined;
  const [whole, open, eol, body, close] = m as unknown as [string, string, string, string, string];
  const line = `id: ${id}`;
  const idLine = /^id:[^\r\n]*(?=\r?$)/m;
  const next = idLine.test(body) ? body.replace(idLine, line) : `${line}${eol}${body}`;
  return `${open}${next}${close}${source.slice(whole.length)}`;
}
