import { readFile, writeFile } from 'node:fs/promises';
import { IssueFileError, parseIssueFile, withIssueId } from '../issues/issue-file.js';
import { isSlugOf, slugBase } from '../issues/slug.js';
import type { ApiClient } from './api-client.js';
import type { Issue, IssuePage } from './api-types.js';
import { ApiError, CliFailure, isNotFound } from './errors.js';
import { bytes } from '../shared/format.js';
import { findIssue } from './find-issue.js';
import { json, note, print } from './io.js';

export type PublishOptions = { draft: boolean; subject?: string; preheader?: string; json: boolean; correct: boolean; new: boolean };
type IssueInput = { subject: string; markdown: string; preheader?: string };
type FileIssue = IssueInput & { id?: number };
type Saved = Issue & { correction: { mailAlreadySent: boolean } | null };

const FRONT_MATTER = /^\uFEFF?---\r?\n/;

/**
 * The issue in a Markdown file: front matter (`subject`, `preheader`) when the file has it, as
 * `npm run sample` reads it; --subject and --preheader override it or stand in for it.
 */
function issueFromFile(text: string, file: string, opts: Pick<PublishOptions, 'subject' | 'preheader'>): FileIssue {
  let input: FileIssue;
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

const withoutMarkdown = ({ markdown: _, ...issue }: Issue & { correction?: unknown }): Issue => issue;

/**
 * The issue this file was published as before: the one its front matter's `id` names, else the
 * newest issue whose slug is the one its subject suggests (`slug`, `slug-2`…). Undefined: none.
 */
async function issueMadeBefore(api: ApiClient, file: string, input: FileIssue): Promise<Issue | undefined> {
  if (input.id !== undefined) {
    try {
      return await api.request<Issue>('GET', `/api/issues/${input.id}`);
    } catch (err) {
      if (isNotFound(err)) {
        throw new CliFailure(`${file} names issue ${input.id} (its "id:" line), which does not exist: remove the line to create a new issue`);
      }
      throw err;
    }
  }
  const base = slugBase(input.subject);
  let cursor: string | null = null;
  do {
    const page: IssuePage = await api.request<IssuePage>('GET', `/api/issues?limit=200${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
    const found = page.items.find((i) => isSlugOf(i.slug, base));
    if (found) return api.request<Issue>('GET', `/api/issues/${found.id}`);
    cursor = page.nextCursor;
  } while (cursor);
  return undefined;
}

/** Keeps the issue's id in the file's front matter, so that the next publish updates it. */
async function keepId(file: string, text: string, id: number): Promise<boolean> {
  const next = withIssueId(text, id);
  if (next === undefined || next === text) return false;
  try {
    await writeFile(file, next);
    return true;
  } catch (err) {
    note(
      `warning: could not write "id: ${id}" into ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); add it by hand to update this issue next time`,
    );
    return false;
  }
}

/**
 * Creates the issue from a file, or updates the one the file made before (by the front matter's
 * id, else by slug): a draft is updated; a published or sent one is corrected only with
 * --correct. Unless --draft, the issue is then published to the archive (if not in it already).
 */
export async function publishFile(api: ApiClient, file: string, opts: PublishOptions): Promise<number> {
  const text = await readIssueFile(file);
  const parsed = issueFromFile(text, file, opts);
  const { id: _id, ...input } = parsed;
  const before = opts.new ? undefined : await issueMadeBefore(api, file, parsed);
  let issue: Issue;
  let action: string;
  if (!before) {
    issue = await api.request<Issue>('POST', '/api/issues', { json: input });
    action = 'Created draft';
  } else {
    const isDraft = before.status === 'draft';
    const unchanged = before.subject === input.subject.trim() && before.preheader === (input.preheader ?? '').trim() && before.markdown === input.markdown;
    if (!isDraft && !opts.correct && !unchanged) {
      throw new CliFailure(
        `issue ${before.id} "${before.subject}" (${before.slug}), which ${file} was published as, is already published${before.inArchive ? '' : ' (and taken out of the archive)'}: ` +
          'pass --correct to correct it (its web version, the archive and the feed change; mail already sent does not), ' +
          'or --new to create another issue',
      );
    }
    if (unchanged) {
      issue = before;
      action = 'Unchanged';
    } else {
      // Based on the revision just read: a save from elsewhere in between is an edit_conflict, not lost.
      const saved = await api.request<Saved>('PATCH', `/api/issues/${before.id}`, { json: { ...input, revision: before.revision } });
      issue = saved;
      action = isDraft ? 'Updated draft' : 'Corrected';
      if (saved.correction?.mailAlreadySent) note(`Issue ${issue.id} was mailed already: the mail readers got does not change, only its web version.`);
    }
  }
  if (!opts.draft && !issue.inArchive) {
    try {
      issue = await api.request<Issue>('POST', `/api/issues/${issue.id}/publish`);
      action = action === 'Created draft' || action === 'Unchanged' ? 'Published' : `${action} and published`;
    } catch (err) {
      if (err instanceof ApiError) {
        throw new ApiError(err.status, err.code, `issue ${issue.id} was saved as a draft, but publishing it failed: ${err.message}`, err.details);
      }
      throw err;
    }
  }
  const wroteId = await keepId(file, text, issue.id);
  if (opts.json) {
    json(withoutMarkdown(issue));
    return 0;
  }
  print(`${action} issue ${issue.id}: ${issue.subject}`);
  print(`  id:          ${issue.id}`);
  print(`  slug:        ${issue.slug}`);
  print(`  revision:    ${issue.revision}`);
  print(`  web version: ${issue.webUrl}${issue.inArchive ? '' : ' (public once published)'}`);
  print(`  HTML:        ${bytes(issue.htmlBytes)} (${issue.sections.length} section${issue.sections.length === 1 ? '' : 's'})`);
  for (const w of issue.warnings) print(`  warning:     ${w}`);
  if (wroteId) print(`  file:        "id: ${issue.id}" written into ${file}: publishing it again updates this issue`);
  if (issue.status === 'draft') print(`  preview:     broadside preview ${issue.id} (prints a link for a browser)`);
  if (!action.startsWith('Corrected')) print(`Send it with: broadside send ${issue.slug}`);
  return 0;
}

/** Takes an issue out of the archive and the feed. */
export async function unpublishIssue(api: ApiClient, ref: string): Promise<number> {
  const found = await findIssue(api, ref);
  const issue = await api.request<Issue>('POST', `/api/issues/${found.id}/unpublish`);
  print(`Unpublished issue ${issue.id}: ${issue.subject}`);
  print(`  It is out of the archive and the feed; ${issue.webUrl} answers 410 Gone.`);
  print(
    issue.status === 'draft'
      ? '  It was never sent, so it is a draft again: edit it, publish it again or delete it.'
      : '  It was sent, and stays sent: readers keep the mail they got.',
  );
  return 0;
}
