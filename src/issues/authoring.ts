import slugify from '@sindresorhus/slugify';
import type { Pool } from '../db/pool.js';
import { conflict, invalidInput, notFound } from '../errors.js';
import type { IssueRenderer } from '../rendering/issue.js';
import { findIssue, insertIssue, slugsLike, updateDraft, type IssueRow, type IssueWrite } from './queries.js';

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

/** The slug a subject suggests: lower-case ASCII words joined by dashes, at most 80 characters. */
function slugBase(subject: string): string {
  let s = slugify(subject);
  if (s.length > 80) {
    // Cut at the last whole word that fits; a single word longer than that is cut short.
    const cut = s.slice(0, 80);
    s = s[80] === '-' || !cut.includes('-') ? cut : cut.replace(/-[^-]*$/, '');
  }
  return s.replace(/-+$/, '') || 'issue';
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

/** Changes a draft: the fields given replace the stored ones, and the issue is compiled again. */
export async function editIssue(pool: Pool, renderer: IssueRenderer, id: number, patch: Partial<IssueInput>): Promise<IssueRow> {
  const current = await findIssue(pool, id);
  if (!current) throw notFound('issue');
  if (current.published_at) throw notDraft();
  const input = checkIssueInput({
    subject: patch.subject ?? current.subject,
    preheader: patch.preheader ?? current.preheader,
    markdown: patch.markdown ?? current.markdown,
  });
  for (let attempt = 0; ; attempt++) {
    // The slug follows the subject while the issue is a draft: nobody has its address yet.
    const slug = input.subject === current.subject ? current.slug : await freeSlug(pool, input.subject, id);
    try {
      const row = await updateDraft(pool, id, await compiled(renderer, input, slug));
      if (row) return row;
      // Published (or deleted) between our read and our write.
      return await refuseChange(pool, id);
    } catch (err) {
      if (!isSlugRace(err) || attempt >= 5) throw err;
    }
  }
}

/** Why a change to a draft matched nothing: the issue is gone (404) or is no draft any more (409). */
export async function refuseChange(pool: Pool, id: number): Promise<never> {
  if (!(await findIssue(pool, id))) throw notFound('issue');
  throw notDraft();
}

const notDraft = () => conflict('not_draft', 'the issue is no longer a draft: it has been published or sent and cannot change');
