-- Up Migration

-- Every save of an issue is kept: what the editor wrote (subject, preheader, Markdown), numbered
-- per issue from 1. The issue row holds the current revision compiled; its `revision` is the
-- number of the last row here, and both are written by one statement (saveIssue), so a revision
-- is never lost and never out of step with the issue. A save names the revision it was based on:
-- based on an older one, it is refused (edit_conflict) instead of overwriting another tab's work.
CREATE TABLE issue_revisions (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  issue_id    bigint NOT NULL REFERENCES issues (id) ON DELETE CASCADE,
  number      integer NOT NULL CHECK (number >= 1),
  -- 'draft': saved before the issue left draft; 'correction': saved after it was published or sent.
  kind        text NOT NULL CHECK (kind IN ('draft', 'correction')),
  subject     text NOT NULL,
  preheader   text NOT NULL,
  markdown    text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT issue_revisions_number_key UNIQUE (issue_id, number)
);

ALTER TABLE issues
  ADD COLUMN revision integer NOT NULL DEFAULT 1 CHECK (revision >= 1),
  -- When the editor last took the issue out of the archive and the feed. The issue is in the
  -- archive when published_at is set and not older than this: a send that starts later (and
  -- sets published_at) puts it back, as does publishing it again (which clears this). While it
  -- is out, its web version answers 410 Gone. An issue never sent goes back to draft with it.
  ADD COLUMN unpublished_at timestamptz;

-- Issues saved before revisions were kept: their current text is revision 1.
INSERT INTO issue_revisions (issue_id, number, kind, subject, preheader, markdown, created_at)
SELECT id, 1, 'draft', subject, preheader, markdown, updated_at FROM issues;

-- The archive and the feed list the issues in the archive (the same condition as IN_ARCHIVE in
-- src/issues/queries.ts, so the planner can use this index).
DROP INDEX issues_published;
CREATE INDEX issues_published ON issues (published_at DESC, id DESC)
  WHERE published_at IS NOT NULL AND (unpublished_at IS NULL OR unpublished_at < published_at);

-- Down Migration

DROP INDEX issues_published;
CREATE INDEX issues_published ON issues (published_at DESC, id DESC) WHERE published_at IS NOT NULL;
ALTER TABLE issues DROP COLUMN unpublished_at, DROP COLUMN revision;
DROP TABLE issue_revisions;
