import type { Pool } from '../db/pool.js';
import { AppError, conflict, invalidInput, notFound } from '../errors.js';
import type { IssueRenderer } from '../rendering/issue.js';
import { slugBase } from './slug.js';
import { findIssue, findIssueState, insertIssue, saveIssue, slugsLike, type IssueRow, type IssueWrite, type SaveKind } from './queries.js';

export const SUBJECT_MAX = 300;
export const PREHEADER_MAX = 300;
export const MARKDOWN_MAX = 512 * 1024;

export type IssueInput = { subject: string; markdown: string; preheader?: string };

// Control characters in a header would let an editor fold or inject header lines; NUL cannot be
// stored in Postgres text at all.
const CONTROL = /[\u0000-\u001f\u007f]/;

function checkLine(value: string, field: string, max: number, required: boolean): string {
  const v = value.trim();
  if (required && v === '') throw invalidInput(`${field} must not be empty`, { field });
  if ([...v].length > max) throw invalidInput(`${field} must be at most ${max} characters`, { field });
  if (CONTROL.test(v)) throw invalidInput(`${field} must be one line without control characters`, { field });
  return v;
}

function checkIssueInput(input: IssueInput): Required<IssueInput> {
  const subject = checkLine(input.subject, 'subject', SUBJECT_MAX, true);
  const preheader = checkLine(input.preheader ?? '', 'preheader', PREHEADER_MAX, false);
  if (input.markdown.includes('\u0000')) throw invalidInput('markdown must not contain NUL characters', { field: 'markdown' });
  // Other control characters (pasted from word processors) mean nothing in Markdown and are
  // not allowed in XML (the feed): they are dropped. Tabs and line breaks stay.
  const markdown = input.markdown.replace(/[\u0001-\u0008\u000B\u000C\u000E-\u001F\u007F]/g, '');
  if (markdown.trim() === '') throw invalidInput('markdown must not be empty', { field: 'markdown' });
  if (Buffer.byteLength(markdown) > MARKDOWN_MAX) throw invalidInput(`markdown must be at most ${MARKDOWN_MAX / 1024} KB`, { field: 'markdown' });
  return { subject, preheader, markdown };
}

async function freeSlug(pool: Pool, subject: string, exceptId?: number): Promise<string> {
  const base = slugBase(subject);
  const taken = await slugsLike(pool, base, exceptId);
  if (!taken.has(base)) return base;
  for (let n = 2; ; n++) if (!taken.has(`${base}-${n}`)) return `${base}-${n}`;
}

const isSlugRace = (err: unknown) =>
  (err as { code?: string; constraint?: string }).code === '23505' && (err as { constraint?: string }).constraint === 'issues_slug_key';

async function compiled(renderer: IssueRenderer, input: Required<IssueInput>, slug: string): Promise<IssueWrite> {
  const c = await renderer.compile({ ...input, slug });
  return { ...input, slug, content: c.content, html: c.html, text: c.text, htmlBytes: c.htmlBytes };
}

/**
 * Creates a draft: picks a free slug, compiles the MJML once and stores source and compiled form
 * together. Two drafts with one subject racing for a slug: the loser picks the next one.
 */
export async function createIssue(pool: Pool, renderer: IssueRenderer, raw: IssueInput): Promise<IssueRow> {
  const input = checkIssueInput(raw);
  for (let attempt = 0; ; attempt++) {
    const write = await compiled(renderer, input, await freeSlug(pool, input.subject));
    try {
      return await insertIssue(pool, write);
    } catch (err) {
      if (!isSlugRace(err) || attempt >= 5) throw err;
    }
  }
}

/** What a save answers besides the issue: for a correction, that mail already sent stays as it was. */
export type SaveResult = { row: IssueRow; correction: { mailAlreadySent: boolean } | null };

/**
 * Saves the editor's change as a new revision: the fields given replace the stored ones, and the
 * issue is compiled again. A draft is edited; a published or sent issue is corrected (its web
 * version, the archive and the feed change; mail already sent cannot). `basedOn`: the revision
 * the editor's change started from, when the client said; an older one is an edit_conflict.
 * A change that leaves subject, preheader and Markdown as they are saves nothing.
 */
export async function saveIssueChange(
  pool: Pool,
  renderer: IssueRenderer,
  id: number,
  patch: Partial<IssueInput>,
  basedOn: number | undefined,
): Promise<SaveResult> {
  for (let attempt = 0; ; attempt++) {
    const current = await findIssueState(pool, id);
    if (!current) throw notFound('issue');
    if (basedOn !== undefined && basedOn !== current.revision) throw editConflict(basedOn, current.revision);
    const kind: SaveKind = current.published_at ? 'correction' : 'draft';
    if (kind === 'correction' && current.active_send) throw sendInProgress('corrected');
    // A draft with a send triggered (scheduled, or cancelled before it started) is no draft to edit.
    if (kind === 'draft' && current.has_send) throw notDraft();
    const input = checkIssueInput({
      subject: patch.subject ?? current.subject,
      preheader: patch.preheader ?? current.preheader,
      markdown: patch.markdown ?? current.markdown,
    });
    const correction = kind === 'correction' ? { mailAlreadySent: current.mail_sent } : null;
    if (input.subject === current.subject && input.preheader === current.preheader && input.markdown === current.markdown) {
      return { row: current, correction };
    }
    // The slug follows the subject only while nobody has the issue's address: a draft never
    // published. Once in the archive (even if taken out since) its address stays.
    const keepSlug = input.subject === current.subject || kind === 'correction' || current.unpublished_at !== null;
    const slug = keepSlug ? current.slug : await freeSlug(pool, input.subject, id);
    try {
      const row = await saveIssue(pool, id, current.revision, kind, await compiled(renderer, input, slug));
      if (row) return { row, correction: kind === 'correction' ? { mailAlreadySent: row.mail_sent } : null };
    } catch (err) {
      if (!isSlugRace(err)) throw err;
    }
    // Saved by someone else, published, sent or deleted between our read and our write: read
    // again, and say why if the change no longer fits (a client that named its revision gets
    // edit_conflict; one that did not gets the change applied to the newer revision).
    if (attempt >= 5) throw conflict('busy', 'the issue kept changing while this change was saved: try again');
  }
}

/** Why a DELETE matched nothing: the issue is gone (404) or is no draft (409 not_draft). */
export async function refuseDelete(pool: Pool, id: number): Promise<never> {
  if (!(await findIssue(pool, id))) throw notFound('issue');
  throw conflict(
    'not_draft',
    'only a draft can be deleted: this issue is published or its send was triggered (unpublish takes it out of the archive; an issue never sent then becomes a draft again)',
  );
}

/** Why a publish matched nothing: the issue is gone (404), its send scheduled or already in the archive (409). */
export async function refusePublish(pool: Pool, id: number): Promise<never> {
  const issue = await findIssue(pool, id);
  if (!issue) throw notFound('issue');
  // Its start publishes it; taking the send back (unschedule) must leave the draft it was.
  if (issue.state === 'scheduled') throw sendInProgress('published');
  throw conflict('already_published', 'the issue is already in the archive');
}

/** Why an unpublish matched nothing: gone (404), a send under way or not in the archive (409). */
export async function refuseUnpublish(pool: Pool, id: number): Promise<never> {
  const issue = await findIssueState(pool, id);
  if (!issue) throw notFound('issue');
  if (issue.active_send) throw sendInProgress('unpublished');
  throw conflict('not_published', 'the issue is not in the archive: it is a draft or was unpublished already');
}

const notDraft = () => conflict('not_draft', 'the issue is no draft to edit: its send has been triggered (a scheduled send must be taken back first)');

export const sendInProgress = (what: string) =>
  conflict('send_in_progress', `the issue's send is scheduled, sending or paused: it cannot be ${what} until the send is done or cancelled`);

/** 409 edit_conflict, with the revision the change was based on and the current one. */
export const editConflict = (basedOn: number, current: number) =>
  new AppError(
    409,
    'edit_conflict',
    `the change was based on revision ${basedOn}, but the issue is at revision ${current} now (saved from elsewhere): reload it and apply the change again`,
    { basedOn, revision: current },
  );
