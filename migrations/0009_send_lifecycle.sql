-- Up Migration

-- Whether this send's start published its issue (the issue was a draft until then). A send
-- taken back before it mailed anyone (unscheduled, or cancelled with nobody mailed) leaves its
-- issue a draft again: published_at is cleared only when the send set it, never when the editor
-- had published the issue to the archive before.
ALTER TABLE sends ADD COLUMN published_issue boolean NOT NULL DEFAULT false;

-- Sends that started before this column existed published their issue if the issue was
-- published at (or after) their start; a send cannot tell more than that.
UPDATE sends s SET published_issue = true
  FROM issues i
 WHERE i.id = s.issue_id AND s.started_at IS NOT NULL AND i.published_at >= s.started_at;

-- The listing of a send's messages by status (GET /api/issues/:id/send/messages?status=) pages
-- by id within a status; the same index serves the progress counts per status, so it replaces
-- messages_send_status rather than adding to the indexes every status change writes.
CREATE INDEX messages_send_status_id ON messages (send_id, status, id);
DROP INDEX messages_send_status;

-- Down Migration

CREATE INDEX messages_send_status ON messages (send_id, status);
DROP INDEX messages_send_status_id;
ALTER TABLE sends DROP COLUMN published_issue;
