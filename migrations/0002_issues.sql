-- Up Migration

-- An issue as the editor wrote it and as compiled for sending. The compiled columns are
-- derived from the source columns and are rewritten together with them, in one UPDATE.
CREATE TABLE issues (
  id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  -- The issue's address in the archive: /issues/<slug>. Chosen from the subject while a draft.
  slug           text NOT NULL,
  subject        text NOT NULL,
  preheader      text NOT NULL DEFAULT '',
  markdown       text NOT NULL,
  -- Sanitised HTML of the intro and of each "##" section: the web version is built from it.
  content        jsonb NOT NULL,
  -- The compiled email with reader slots left open ({parts, slots, escape}): MJML runs once,
  -- here, and never per reader.
  html_template  jsonb NOT NULL,
  text_template  jsonb NOT NULL,
  html_bytes     integer NOT NULL,
  created_at     timestamptz NOT NULL DEFAULT now(),
  updated_at     timestamptz NOT NULL DEFAULT now(),
  -- Set when the issue leaves draft: published to the archive, or (later) sent. It is then
  -- frozen, so every reader and the archive see the same issue.
  published_at   timestamptz,
  CONSTRAINT issues_slug_key UNIQUE (slug),
  CONSTRAINT issues_slug_format CHECK (slug ~ '^[a-z0-9]+(-[a-z0-9]+)*$' AND length(slug) <= 120),
  CONSTRAINT issues_subject_length CHECK (length(subject) BETWEEN 1 AND 300)
);

-- The archive and the feed list published issues, newest first.
CREATE INDEX issues_published ON issues (published_at DESC, id DESC) WHERE published_at IS NOT NULL;

-- Down Migration

DROP TABLE issues;
