-- Up Migration

CREATE TYPE send_status AS ENUM ('scheduled', 'sending', 'paused', 'cancelled', 'done');
CREATE TYPE message_status AS ENUM ('queued', 'sending', 'submitted', 'failed', 'bounced', 'cancelled');

-- The one delivery of an issue to its audience. Its progress lives in the message rows; the
-- two cursors below are checkpoints that are only ever advanced after the work they cover
-- has been written, so a crash repeats work (harmlessly) rather than skipping readers.
CREATE TABLE sends (
  id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  issue_id       bigint NOT NULL REFERENCES issues (id),
  status         send_status NOT NULL,
  scheduled_at   timestamptz NOT NULL DEFAULT now(),
  -- The audience: readers active (confirmed) at or before this moment, when the send started.
  audience_at    timestamptz,
  started_at     timestamptz,
  finished_at    timestamptz,
  created_at     timestamptz NOT NULL DEFAULT now(),
  updated_at     timestamptz NOT NULL DEFAULT now(),
  -- Fan-out: every audience reader with id <= fanout_cursor has a message row. Advanced in the
  -- same statement that inserts the rows.
  fanout_cursor  bigint NOT NULL DEFAULT 0,
  fanout_done    boolean NOT NULL DEFAULT false,
  -- Feeding: every message with id <= fed_cursor that was queued has had its job added.
  -- Reset (lowered) when jobs may have been lost: BullMQ's job ids keep re-adding harmless.
  fed_cursor     bigint NOT NULL DEFAULT 0,
  -- Part of every deliver job id; raised when the feed starts again from 0 (lost jobs, resume),
  -- so no stale job left under an old id in Redis can block a message from being fed again.
  feed_generation integer NOT NULL DEFAULT 0,
  -- Message rows written by the fan-out: the audience size once fanout_done.
  total          integer NOT NULL DEFAULT 0,
  CONSTRAINT sends_issue_key UNIQUE (issue_id)
);

CREATE INDEX sends_unfinished ON sends (id) WHERE status IN ('scheduled', 'sending', 'paused');

-- One per reader per send: the unique key is what makes a second fan-out harmless.
CREATE TABLE messages (
  id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  send_id        bigint NOT NULL REFERENCES sends (id),
  -- No foreign key: erasing a reader deletes their row but the send's counts keep the message.
  subscriber_id  bigint NOT NULL,
  status         message_status NOT NULL DEFAULT 'queued',
  attempts       smallint NOT NULL DEFAULT 0,
  -- When a worker claimed it (queued → sending); a claim older than the sending timeout is
  -- taken to be a dead worker's and the message is queued again.
  claimed_at     timestamptz,
  submitted_at   timestamptz,
  updated_at     timestamptz NOT NULL DEFAULT now(),
  -- The relay's last answer (for submitted, bounced and failed messages).
  smtp_response  text,
  CONSTRAINT messages_send_subscriber_key UNIQUE (send_id, subscriber_id)
);

-- Progress counts per status.
CREATE INDEX messages_send_status ON messages (send_id, status);
-- The feeder walks a send's queued messages in id order.
CREATE INDEX messages_queued ON messages (send_id, id) WHERE status = 'queued';
-- Recovery finds claims that outlived their worker.
CREATE INDEX messages_claimed ON messages (claimed_at) WHERE status = 'sending';
-- The current rate: submissions in the last minute.
CREATE INDEX messages_submitted_at ON messages (send_id, submitted_at) WHERE status = 'submitted';

-- Down Migration

DROP TABLE messages;
DROP TABLE sends;
DROP TYPE message_status;
DROP TYPE send_status;
