-- Up Migration

-- When a link to the reader's data (download, erasure) was last mailed to them: at most one per
-- few minutes, however often the footer's manage page asks (one guarded UPDATE).
ALTER TABLE subscribers ADD COLUMN data_link_sent_at timestamptz;

-- Down Migration

ALTER TABLE subscribers DROP COLUMN data_link_sent_at;
