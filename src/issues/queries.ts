// SQL for issues. A draft's source and its compiled form are written together in one
// statement, guarded by `published_at IS NULL`, so a published issue never changes.
import type { Pool } from '../db/pool.js';
import { SqlFilters } from '../db/sql-filters.js';
import type { IssueContent } from '../rendering/markdown.js';
import type { Template } from '../rendering/template.js';
import { issueStateColumns, issueStateSql, type IssueStateColumns } from './issue-state.js';
import type { IssueState } from '../shared/statuses.js';

export type IssueRow = {
  id: number;
  slug: string;
  subject: string;
  preheader: string;
  markdown: string;
  content: IssueContent;
  html_template: Template;
  text_template: Template;
  html_bytes: number;
  created_at: Date;
  updated_at: Date;
  published_at: Date | null;
} & IssueStateColumns;

/** An issue's listing columns: everything but the source and the compiled templates. */
export type IssueSummaryRow = Omit<IssueRow, 'markdown' | 'html_template' | 'text_template'> & {
  /** published_at in whole microseconds since the epoch, exact (a JS Date keeps milliseconds). */
  published_us: string | null;
};

export type IssueWrite = {
  slug: string;
  subject: string;
  preheader: string;
  markdown: string;
  content: IssueContent;
  html: Template;
  text: Template;
  htmlBytes: number;
};

const SUMMARY = `id, slug, subject, preheader, content, html_bytes, created_at, updated_at, published_at,
  (extract(epoch FROM published_at) * 1000000)::bigint::text AS published_us, ${issueStateColumns('issues')}`;

/** Every column of an issue, with its state (see issue-state.ts): for SELECT and RETURNING. */
const FULL = `*, ${issueStateColumns('issues')}`;

export async function insertIssue(pool: Pool, w: IssueWrite): Promise<IssueRow> {
  const { rows } = await pool.query<IssueRow>(
    `INSERT INTO issues (slug, subject, preheader, markdown, content, html_template, text_template, html_bytes)
     VALUES ($1::text, $2::text, $3::text, $4::text, $5::jsonb, $6::jsonb, $7::jsonb, $8::int)
     RETURNING ${FULL}`,
    [w.slug, w.subject, w.preheader, w.markdown, JSON.stringify(w.content), JSON.stringify(w.html), JSON.stringify(w.text), w.htmlBytes],
  );
  return rows[0]!;
}

/** Rewrites a draft. Nothing (undefined) when the issue is gone or no longer a draft (published, or its send triggered). */
export async function updateDraft(pool: Pool, id: number, w: IssueWrite): Promise<IssueRow | undefined> {
  const { rows } = await pool.query<IssueRow>(
    `UPDATE issues
        SET slug = $2::text, subject = $3::text, preheader = $4::text, markdown = $5::text, content = $6::jsonb,
            html_template = $7::jsonb, text_template = $8::jsonb, html_bytes = $9::int, updated_at = now()
      WHERE id = $1::bigint AND published_at IS NULL
        AND NOT EXISTS (SELECT 1 FROM sends WHERE sends.issue_id = issues.id)
      RETURNING ${FULL}`,
    [id, w.slug, w.subject, w.preheader, w.markdown, JSON.stringify(w.content), JSON.stringify(w.html), JSON.stringify(w.text), w.htmlBytes],
  );
  return rows[0];
}

export async function findIssue(pool: Pool, id: number): Promise<IssueRow | undefined> {
  const { rows } = await pool.query<IssueRow>(`SELECT ${FULL} FROM issues WHERE id = $1::bigint`, [id]);
  return rows[0];
}

/** The slugs in use that a new slug built on `base` could collide with (`base`, `base-2`, …). */
export async function slugsLike(pool: Pool, base: string, exceptId?: number): Promise<Set<string>> {
  const filters = new SqlFilters()
    .add("(slug = $1::text OR (left(slug, length($1::text) + 1) = $1::text || '-' AND substr(slug, length($1::text) + 2) ~ '^[0-9]+$'))", base)
    .optional('id <> $1::bigint', exceptId);
  const { rows } = await pool.query<{ slug: string }>(`SELECT slug FROM issues ${filters.where}`, filters.params);
  return new Set(rows.map((r) => r.slug));
}

/** Every issue, newest first, by keyset on id. */
export async function listIssues(pool: Pool, o: { beforeId?: number; limit: number; published?: boolean; state?: IssueState }): Promise<IssueSummaryRow[]> {
  const filters = new SqlFilters().optional('id < $1::bigint', o.beforeId).optional(`${issueStateSql('issues')} = $1::text`, o.state);
  if (o.published !== undefined) filters.add(o.published ? 'published_at IS NOT NULL' : 'published_at IS NULL');
  const { rows } = await pool.query<IssueSummaryRow>(
    `SELECT ${SUMMARY} FROM issues ${filters.where} ORDER BY id DESC LIMIT ${filters.param(o.limit)}::int`,
    filters.params,
  );
  return rows;
}

/**
 * Takes a draft out of draft: it appears in the archive and can no longer be edited. Not while a
 * send is scheduled: its start publishes the issue, and taking it back must leave a draft.
 */
export async function publishIssue(pool: Pool, id: number): Promise<IssueRow | undefined> {
  const { rows } = await pool.query<IssueRow>(
    `UPDATE issues SET published_at = now(), updated_at = now()
      WHERE id = $1::bigint AND published_at IS NULL AND NOT EXISTS (SELECT 1 FROM sends WHERE sends.issue_id = issues.id)
      RETURNING ${FULL}`,
    [id],
  );
  return rows[0];
}

export async function deleteDraft(pool: Pool, id: number): Promise<boolean> {
  const { rowCount } = await pool.query(
    'DELETE FROM issues WHERE id = $1::bigint AND published_at IS NULL AND NOT EXISTS (SELECT 1 FROM sends WHERE sends.issue_id = issues.id)',
    [id],
  );
  return rowCount === 1;
}

// The public side: only published issues exist there.

export async function findPublishedBySlug(pool: Pool, slug: string): Promise<IssueSummaryRow | undefined> {
  const { rows } = await pool.query<IssueSummaryRow>(`SELECT ${SUMMARY} FROM issues WHERE slug = $1::text AND published_at IS NOT NULL`, [slug]);
  return rows[0];
}

/** Published issues, newest first, by keyset on (published_at, id). */
export async function listPublished(pool: Pool, o: { before?: { publishedUs: bigint; id: number }; limit: number }): Promise<IssueSummaryRow[]> {
  const filters = new SqlFilters().add('published_at IS NOT NULL');
  // The cursor's time is whole microseconds, as Postgres keeps them, added to the epoch as an
  // interval: exact, so no issue falls between two pages.
  if (o.before) {
    filters.add("(published_at, id) < (timestamptz 'epoch' + $1::bigint * interval '1 microsecond', $2::bigint)", o.before.publishedUs.toString(), o.before.id);
  }
  const { rows } = await pool.query<IssueSummaryRow>(
    `SELECT ${SUMMARY} FROM issues ${filters.where} ORDER BY published_at DESC, id DESC LIMIT ${filters.param(o.limit)}::int`,
    filters.params,
  );
  return rows;
}
