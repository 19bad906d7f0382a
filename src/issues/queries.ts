// SQL for issues. An issue's source and its compiled form are written together in one
// statement, with the revision that keeps the source (issue_revisions, migration 0010), guarded
// by the revision the save was based on and by the state the editor's change was meant for.
import type { Pool } from '../db/pool.js';
import { SqlFilters } from '../db/sql-filters.js';
import type { IssueContent } from '../rendering/markdown.js';
import type { Template } from '../rendering/template.js';
import type { IssueState as IssueStateWord } from '../shared/statuses.js';
import { issueStateColumns, issueStateSql, type IssueStateColumns } from './issue-state.js';

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
  /** The number of the issue's latest revision (issue_revisions). */
  revision: number;
  unpublished_at: Date | null;
  /** In the public archive and the feed (IN_ARCHIVE). */
  in_archive: boolean;
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

/**
 * In the public archive and the feed: published (or sent), and not taken out since. A send that
 * starts after an unpublish sets published_at again and so puts the issue back. The partial index
 * issues_published (migration 0010) has this same condition.
 */
const IN_ARCHIVE = '(published_at IS NOT NULL AND (unpublished_at IS NULL OR unpublished_at < published_at))';

/** A send has been triggered for the issue (whatever became of it). */
const HAS_SEND = 'EXISTS (SELECT 1 FROM sends WHERE sends.issue_id = issues.id)';
/** A send that reads the issue's compiled templates now or will: no correction meanwhile. */
const ACTIVE_SEND = "EXISTS (SELECT 1 FROM sends WHERE sends.issue_id = issues.id AND sends.status IN ('scheduled', 'sending', 'paused'))";
/** Mail of the issue may have gone out: its send started. */
const MAIL_SENT = 'EXISTS (SELECT 1 FROM sends WHERE sends.issue_id = issues.id AND sends.started_at IS NOT NULL)';

/** Every column of an issue, with whether it is in the archive and its state (see issue-state.ts): for SELECT and RETURNING. */
const ROW = `*, ${IN_ARCHIVE} AS in_archive, ${issueStateColumns('issues')}`;

const SUMMARY = `id, slug, subject, preheader, content, html_bytes, created_at, updated_at, published_at, revision, unpublished_at,
  ${IN_ARCHIVE} AS in_archive, (extract(epoch FROM published_at) * 1000000)::bigint::text AS published_us, ${issueStateColumns('issues')}`;

/** Creates an issue (a draft) and its revision 1, in one statement. */
export async function insertIssue(pool: Pool, w: IssueWrite): Promise<IssueRow> {
  const { rows } = await pool.query<IssueRow>(
    `WITH ins AS (
       INSERT INTO issues (slug, subject, preheader, markdown, content, html_template, text_template, html_bytes)
       VALUES ($1::text, $2::text, $3::text, $4::text, $5::jsonb, $6::jsonb, $7::jsonb, $8::int)
       RETURNING ${ROW}),
     rev AS (
       INSERT INTO issue_revisions (issue_id, number, kind, subject, preheader, markdown)
       SELECT id, revision, 'draft', subject, preheader, markdown FROM ins)
     SELECT * FROM ins`,
    [w.slug, w.subject, w.preheader, w.markdown, JSON.stringify(w.content), JSON.stringify(w.html), JSON.stringify(w.text), w.htmlBytes],
  );
  return rows[0]!;
}

/**
 * What a save is: a draft's edit (the issue still a draft, no send triggered) or a correction of
 * a published or sent issue (no send scheduled, sending or paused: workers read the templates).
 */
export type SaveKind = 'draft' | 'correction';

const SAVE_GUARD: Record<SaveKind, string> = {
  draft: `published_at IS NULL AND NOT ${HAS_SEND}`,
  correction: `published_at IS NOT NULL AND NOT ${ACTIVE_SEND}`,
};

export type SavedRow = IssueRow & { mail_sent: boolean };

/**
 * Saves a new revision of the issue: source, compiled form and the revision row, in one
 * statement. Only when the issue is still at revision `basedOn` (another save in between: the
 * editor would overwrite it unseen) and still fit for `kind` (published, or a send triggered or
 * started, meanwhile). Nothing (undefined) otherwise: the caller reads again to say why.
 */
export async function saveIssue(pool: Pool, id: number, basedOn: number, kind: SaveKind, w: IssueWrite): Promise<SavedRow | undefined> {
  const { rows } = await pool.query<SavedRow>(
    `WITH upd AS (
       UPDATE issues
          SET slug = $2::text, subject = $3::text, preheader = $4::text, markdown = $5::text, content = $6::jsonb,
              html_template = $7::jsonb, text_template = $8::jsonb, html_bytes = $9::int,
              revision = revision + 1, updated_at = now()
        WHERE id = $1::bigint AND revision = $10::int AND ${SAVE_GUARD[kind]}
        RETURNING ${ROW}, ${MAIL_SENT} AS mail_sent),
     rev AS (
       INSERT INTO issue_revisions (issue_id, number, kind, subject, preheader, markdown)
       SELECT id, revision, $11::text, subject, preheader, markdown FROM upd)
     SELECT * FROM upd`,
    [id, w.slug, w.subject, w.preheader, w.markdown, JSON.stringify(w.content), JSON.stringify(w.html), JSON.stringify(w.text), w.htmlBytes, basedOn, kind],
  );
  return rows[0];
}

export type IssueState = IssueRow & { has_send: boolean; active_send: boolean; mail_sent: boolean };

export async function findIssue(pool: Pool, id: number): Promise<IssueRow | undefined> {
  const { rows } = await pool.query<IssueRow>(`SELECT ${ROW} FROM issues WHERE id = $1::bigint`, [id]);
  return rows[0];
}

/** The issue with what its send means for a change: one under way, or mail already gone. */
export async function findIssueState(pool: Pool, id: number): Promise<IssueState | undefined> {
  const { rows } = await pool.query<IssueState>(
    `SELECT ${ROW}, ${HAS_SEND} AS has_send, ${ACTIVE_SEND} AS active_send, ${MAIL_SENT} AS mail_sent FROM issues WHERE id = $1::bigint`,
    [id],
  );
  return rows[0];
}

export type RevisionRow = {
  number: number;
  kind: SaveKind;
  subject: string;
  preheader: string;
  markdown_bytes: number;
  created_at: Date;
};

/** An issue's revisions, newest first, by keyset on their number. */
export async function listRevisions(pool: Pool, issueId: number, o: { beforeNumber?: number; limit: number }): Promise<RevisionRow[]> {
  const filters = new SqlFilters().add('issue_id = $1::bigint', issueId).optional('number < $1::int', o.beforeNumber);
  const { rows } = await pool.query<RevisionRow>(
    `SELECT number, kind, subject, preheader, octet_length(markdown) AS markdown_bytes, created_at
       FROM issue_revisions ${filters.where} ORDER BY number DESC LIMIT ${filters.param(o.limit)}::int`,
    filters.params,
  );
  return rows;
}

export async function findRevision(pool: Pool, issueId: number, n: number): Promise<(RevisionRow & { markdown: string }) | undefined> {
  const { rows } = await pool.query<RevisionRow & { markdown: string }>(
    `SELECT number, kind, subject, preheader, octet_length(markdown) AS markdown_bytes, created_at, markdown
       FROM issue_revisions WHERE issue_id = $1::bigint AND number = $2::int`,
    [issueId, n],
  );
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
export async function listIssues(pool: Pool, o: { beforeId?: number; limit: number; published?: boolean; state?: IssueStateWord }): Promise<IssueSummaryRow[]> {
  const filters = new SqlFilters().optional('id < $1::bigint', o.beforeId).optional(`${issueStateSql('issues')} = $1::text`, o.state);
  if (o.published !== undefined) filters.add(o.published ? 'published_at IS NOT NULL' : 'published_at IS NULL');
  const { rows } = await pool.query<IssueSummaryRow>(
    `SELECT ${SUMMARY} FROM issues ${filters.where} ORDER BY id DESC LIMIT ${filters.param(o.limit)}::int`,
    filters.params,
  );
  return rows;
}

/**
 * Puts an issue not in the archive into it: a draft is published (from now on, changes to it are
 * corrections); a sent issue taken out by unpublish goes back, with the date it was sent. Not
 * while a send is scheduled: its start publishes the issue, and taking it back (unschedule) must
 * leave the draft it was.
 */
export async function publishIssue(pool: Pool, id: number): Promise<IssueRow | undefined> {
  const { rows } = await pool.query<IssueRow>(
    `UPDATE issues SET published_at = COALESCE(published_at, now()), unpublished_at = NULL, updated_at = now()
      WHERE id = $1::bigint AND NOT ${IN_ARCHIVE}
        AND NOT EXISTS (SELECT 1 FROM sends WHERE sends.issue_id = issues.id AND sends.status = 'scheduled')
      RETURNING ${ROW}`,
    [id],
  );
  return rows[0];
}

/**
 * Takes an issue out of the archive and the feed. One never sent goes back to draft (it may be
 * edited or deleted again); a sent one stays sent. Not while a send is scheduled, sending or
 * paused: its mail links to the web version. Nothing (undefined) when not in the archive or a
 * send is under way.
 */
export async function unpublishIssue(pool: Pool, id: number): Promise<IssueRow | undefined> {
  const { rows } = await pool.query<IssueRow>(
    `UPDATE issues SET unpublished_at = now(), updated_at = now(),
            published_at = CASE WHEN ${MAIL_SENT} THEN published_at END
      WHERE id = $1::bigint AND ${IN_ARCHIVE} AND NOT ${ACTIVE_SEND}
      RETURNING ${ROW}`,
    [id],
  );
  return rows[0];
}

export async function deleteDraft(pool: Pool, id: number): Promise<boolean> {
  const { rowCount } = await pool.query(`DELETE FROM issues WHERE id = $1::bigint AND published_at IS NULL AND NOT ${HAS_SEND}`, [id]);
  return rowCount === 1;
}

// The public side: only issues in the archive exist there.

export async function findPublishedBySlug(pool: Pool, slug: string): Promise<IssueSummaryRow | undefined> {
  const { rows } = await pool.query<IssueSummaryRow>(`SELECT ${SUMMARY} FROM issues WHERE slug = $1::text AND ${IN_ARCHIVE}`, [slug]);
  return rows[0];
}

/** Published issues, newest first, by keyset on (published_at, id). */
export async function listPublished(pool: Pool, o: { before?: { publishedUs: bigint; id: number }; limit: number }): Promise<IssueSummaryRow[]> {
  const filters = new SqlFilters().add(IN_ARCHIVE);
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

/**
 * What the public archive is made of, in one cheap aggregate: every issue that is or was public
 * (in the archive, or taken out of it: its 410), by the columns that change with what readers
 * see (a correction bumps revision and updated_at; publish, unpublish, a send's start and a
 * cancel move published_at or unpublished_at; every change of them moves updated_at). An issue
 * leaving the set (a cancelled send's draft) changes the count and the sum. Drafts' edits do not
 * move it. `changedAt` is the latest change of any issue: never earlier than what the archive
 * shows, so it serves as the lists' Last-Modified.
 */
export type ArchiveFingerprint = { hash: string; changedAt: Date };

export async function archiveFingerprint(pool: Pool): Promise<ArchiveFingerprint> {
  const { rows } = await pool.query<{ hash: string; changed_at: Date | null }>(
    `SELECT count(*)::text || ':' || coalesce(sum(hashtextextended(
              concat_ws('/', id, slug, revision, updated_at, published_at, unpublished_at), 0)), 0)::text AS hash,
            (SELECT max(updated_at) FROM issues) AS changed_at
       FROM issues WHERE published_at IS NOT NULL OR unpublished_at IS NOT NULL`,
  );
  const row = rows[0]!;
  return { hash: row.hash, changedAt: row.changed_at ?? new Date(0) };
}

/** The slugs of the public side: true for an issue in the archive, false for one taken out of it (410). */
export async function archiveSlugs(pool: Pool): Promise<Map<string, boolean>> {
  const { rows } = await pool.query<{ slug: string; in_archive: boolean }>(
    `SELECT slug, ${IN_ARCHIVE} AS in_archive FROM issues WHERE ${IN_ARCHIVE} OR unpublished_at IS NOT NULL`,
  );
  return new Map(rows.map((r) => [r.slug, r.in_archive]));
}
