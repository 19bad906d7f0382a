-- Up Migration

-- A message whose worker died while submitting it, in a send cancelled before the message could
-- be tried again: it is `cancelled` (it will not be sent), yet the relay may have accepted it
-- before the worker died. Progress counts these apart (inDoubt), so that `submitted` and
-- `submitted + inDoubt` bound the copies readers got.
ALTER TABLE messages ADD COLUMN in_doubt boolean NOT NULL DEFAULT false;

-- Progress counts them per send; nearly every row is false.
CREATE INDEX messages_in_doubt ON messages (send_id) WHERE in_doubt;

-- Down Migration

DROP INDEX messages_in_doubt;
ALTER TABLE messages DROP COLUMN in_doubt;
