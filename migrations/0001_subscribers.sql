-- Up Migration

CREATE TYPE subscriber_status AS ENUM ('pending', 'active', 'unsubscribed', 'bounced', 'complained');
CREATE TYPE consent_source AS ENUM ('form', 'api', 'import');

CREATE TABLE subscribers (
  id                   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  -- The address as the reader typed it (trimmed), for display.
  email                text NOT NULL,
  -- Lower-cased, IDN domain in ASCII: the identity of the reader.
  email_normalized     text NOT NULL,
  name                 text,
  status               subscriber_status NOT NULL DEFAULT 'pending',
  created_at           timestamptz NOT NULL DEFAULT now(),
  updated_at           timestamptz NOT NULL DEFAULT now(),
  confirmation_sent_at timestamptz,
  confirmed_at         timestamptz,
  unsubscribed_at      timestamptz,
  bounced_at           timestamptz,
  complained_at        timestamptz,
  -- Consent evidence: when and how the reader (or the editor, for imports) gave it.
  consent_at           timestamptz NOT NULL DEFAULT now(),
  consent_source       consent_source NOT NULL,
  consent_ip           inet,
  consent_user_agent   text,
  confirm_ip           inet,
  confirm_user_agent   text,
  CONSTRAINT subscribers_email_normalized_key UNIQUE (email_normalized),
  CONSTRAINT subscribers_email_normalized_lower CHECK (email_normalized = lower(email_normalized)),
  CONSTRAINT subscribers_email_length CHECK (length(email) <= 254),
  CONSTRAINT subscribers_name_length CHECK (length(name) <= 100)
);

-- The send streams active readers by id (keyset); a partial index keeps that cheap.
CREATE INDEX subscribers_active_id ON subscribers (id) WHERE status = 'active';
CREATE INDEX subscribers_status_id ON subscribers (status, id);

-- Addresses that must never be mailed again although their subscriber row is gone (erasure).
-- Only a SHA-256 of the normalised address is kept.
CREATE TABLE suppressions (
  email_hash  bytea PRIMARY KEY,
  reason      text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now()
);

-- Down Migration

DROP TABLE suppressions;
DROP TABLE subscribers;
DROP TYPE consent_source;
DROP TYPE subscriber_status;
