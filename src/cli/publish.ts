import { readFile } from 'node:fs/promises';
import { IssueFileError, parseIssueFile } from '../issues/issue-file.js';
import type { ApiClient } from './api-client.js';
import type { Issue } from './api-types.js';
import { ApiError, CliFailure } from './errors.js';
import { bytes } from '../shared/format.js';
import { json, print } from './io.js';

export type PublishOptions = { draft: boolean; subject?: string; preheader?: string; json: boolean };
type IssueInput = { subject: string; markdown: string; preheader?: string };

const FRONT_MATTER = /^\uFEFF?---\r?\n/;

/**
 * The issue in a Markdown file: front matter (`subject`, `preheader`) when the file has it, as
 * `npm run sample` reads it; --subject and --preheader override it or stand in for it.
 */
function issueFromFile(text: string, file: string, opts: Pick<PublishOptions, 'subject' | 'preheader'>): IssueInput {
  let input: IssueInput;
  if (FRONT_MATTER.test(text)) {
    try {
      input = parseIssueFile(text);
    } catch (err) {
      if (err instanceof IssueFileError) throw new CliFailure(`${file}: ${err.message}`);
      throw err;
    }
  } else {
    if (opts.subject === undefined) {
      throw new CliFailure(`${file} has no subject: start the file with front matter ("---", "subject: …", "---") or pass --subject`);
    }
    input = { subject: opts.subject, markdown: text.replace(/^\uFEFF/, '') };
  }
  if (opts.subject !== undefined) input.subject = opts.subject;
  if (opts.preheader !== undefined) input.preheader = opts.preheader;
  if (input.subject.trim() === '') throw new CliFailure(`${file}: the subject is empty`);
  return input;
}

async function readIssueFile(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    throw new CliFailure(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

const withoutMarkdown = ({ markdown: _, ...issue }: Issue): Issue => issue;

/** Creates the issue from a file and, unless --draft, publishes it to the archive. */
export async function publishFile(api: ApiClient, file: string, opts: PublishOptions): Promise<number> {
  const input = issueFromFile(await readIssueFile(file), file, opts);
  const created = await api.request<Issue>('POST', '/api/issues', { json: input });
  let issue = created;
  if (!opts.draft) {
    try {
      issue = await api.request<Issue>('POST', `/api/issues/${created.id}/publish`);
    } catch (err) {
      if (err instanceof ApiError) {
        throw new ApiError(err.status, err.code, `issue ${created.id} was created as a draft, but publishing it failed: ${err.message}`, err.details);
      }
      throw err;
    }
  }
  if (opts.json) {
    json(withoutMarkdown(issue));
    return 0;
  }
  print(`${issue.status === 'published' ? 'Published' : 'Created draft'} issue ${issue.id}: ${issue.subject}`);
  print(`  id:          ${issue.id}`);
  print(`  slug:        ${issue.slug}`);
  print(`  web version: ${issue.webUrl}${issue.status === 'draft' ? ' (public once published)' : ''}`);
  print(`  HTML:        ${bytes(issue.htmlBytes)} (${issue.sections.length} section${issue.sections.length === 1 ? '' : 's'})`);
  for (const w of issue.warnings) print(`  warning:     ${w}`);
  if (issue.status === 'draft') print(`  preview:     broadside preview ${issue.id} (prints a link for a browser)`);
  print(`Send it with: broadside send ${issue.slug}`);
  return 0;
}
