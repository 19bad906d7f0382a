-- Up Migration

-- Retention of raw inbound reports (src/bounces/retention.ts): the prune walks the reports
-- oldest first, in keyset batches on (received_at, id).
CREATE INDEX inbound_reports_received ON inbound_reports (received_at, id);

-- The bounces that link to a report: whether a report matched a reader (the prune keeps those
-- for BOUNCE_REPORT_RETENTION_DAYS, the others for BOUNCE_UNMATCHED_REPORT_RETENTION_DAYS), and
-- the ON DELETE SET NULL of bounces.report_id, which would otherwise scan the whole of bounces
-- for every report deleted (by the prune or an erasure).
CREATE INDEX bounces_report ON bounces (report_id) WHERE report_id IS NOT NULL;

-- Down Migration

DROP INDEX bounces_report;
DROP INDEX inbound_reports_received;
