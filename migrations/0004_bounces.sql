-- Up Migration

CREATE TYPE bounce_type AS ENUM ('hard', 'soft', 'complaint', 'other');
-- Where we learnt it: the relay's answer at submission (smtp), a DSN or an ARF report to the
-- bounce listener, or a provider's webhook.
CREATE TYPE bounce_source AS ENUM ('smtp', 'dsn', 'arf', 'ses', 'postmark', 'sendgrid', 'mailgun');

-- Every mail the bounce listener accepted, byte for byte (up to BOUNCE_MAX_BYTES): the evidence
-- behind its bounce rows, and all there is when it matched nothing or could not be understood.
CREATE TABLE inbound_reports (
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  received_at  timestamptz NOT NULL DEFAULT now(),
  mail_from    text,
  rcpt_to      text NOT NULL,
  -- dsn, arf or unknown (parseReport's verdict)
  kind         text NOT NULL,
  size         integer NOT NULL,
  -- The same bytes delivered again (a sender retrying after a lost reply) are one report.
  sha256       bytea NOT NULL,
  raw          bytea NOT NULL,
  CONSTRAINT inbound_reports_sha256_key UNIQUE (sha256)
);

-- One per bounce or complaint: per recipient of a DSN, per ARF report, per provider event, per
-- refusal at submission. Rows that matched no message keep subscriber_id NULL: never dropped.
CREATE TABLE bounces (
  id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  type              bounce_type NOT NULL,
  source            bounce_source NOT NULL,
  -- No foreign keys: erasing a reader scrubs their rows (address and diagnostic) and deletes
  -- their raw reports, but keeps the rows for the send's counts; sends and messages stay.
  subscriber_id     bigint,
  message_id        bigint,
  send_id           bigint,
  -- How the message was found: verp (the return path's token), envelope_id (the DSN's
  -- Original-Envelope-Id, our ENVID), header (X-Broadside-Message in
  -- the returned headers), message_id (the original Message-ID), token (a provider's copy of our
  -- header), address (a signed provider event naming a reader's address), submission.
  matched_by        text,
  -- The address the report names (Final-Recipient, the provider's recipient).
  recipient         text,
  -- RFC 3464 Action (failed, delayed, ...), when the report gave one.
  action            text,
  -- RFC 3463 enhanced status code, e.g. 5.1.1.
  status            text,
  -- The remote server's or relay's own words (Diagnostic-Code, SMTP reply, provider text).
  diagnostic        text,
  remote_mta        text,
  -- ARF Feedback-Type (abuse, fraud, not-spam, ...).
  feedback_type     text,
  -- Once-only key: the provider's event id, or for reports the report's hash and recipient.
  event_id          text,
  -- The raw report goes when its reader is erased; the row stays, scrubbed, for the counts.
  report_id         bigint REFERENCES inbound_reports (id) ON DELETE SET NULL,
  occurred_at       timestamptz NOT NULL DEFAULT now(),
  created_at        timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT bounces_event_key UNIQUE (source, event_id),
  CONSTRAINT bounces_matched CHECK ((subscriber_id IS NULL) = (matched_by IS NULL))
);

-- A send's complaint and bounce counts.
CREATE INDEX bounces_send_type ON bounces (send_id, type) WHERE send_id IS NOT NULL;
-- Whether a message drew a bounce (the soft-bounce reset).
CREATE INDEX bounces_message ON bounces (message_id) WHERE message_id IS NOT NULL;
-- Erasure, and a reader's history.
CREATE INDEX bounces_subscriber ON bounces (subscriber_id) WHERE subscriber_id IS NOT NULL;
CREATE INDEX bounces_unmatched ON bounces (id) WHERE subscriber_id IS NULL;

-- The times of a reader's recent soft bounces (at most SOFT_BOUNCE_LIMIT, within the window),
-- kept on the reader's row so that counting and suppressing are one atomic update.
--
-- A successful submission resets them. Behind a relay every submission is accepted (250) and a
-- soft bounce comes back later as a DSN, so "successful" can only mean "submitted and never
-- bounced": soft_bounce_probe is the latest message submitted to a reader who has soft bounces.
-- When the next submission or the next soft bounce finds that message without a bounce of its
-- own, it went through, and the count starts again.
ALTER TABLE subscribers
  ADD COLUMN soft_bounces      timestamptz[],
  ADD COLUMN soft_bounce_probe bigint;
-- Each batch of submissions looks at these readers only: the few with soft bounces.
CREATE INDEX subscribers_soft_bounces ON subscribers (id) WHERE soft_bounces IS NOT NULL;

-- The rate guard: when a send's bounce or complaint rate passed its threshold, why, and whether
-- the editor chose to go on anyway (resuming a send the guard paused).
ALTER TABLE sends
  ADD COLUMN rate_alert_at     timestamptz,
  ADD COLUMN rate_alert        text,
  ADD COLUMN rate_alert_waived boolean NOT NULL DEFAULT false;

-- Down Migration

ALTER TABLE sends DROP COLUMN rate_alert_waived, DROP COLUMN rate_alert, DROP COLUMN rate_alert_at;
ALTER TABLE subscribers DROP COLUMN soft_bounce_probe, DROP COLUMN soft_bounces;
DROP TABLE bounces;
DROP TABLE inbound_reports;
DROP TYPE bounce_source;
DROP TYPE bounce_type;
