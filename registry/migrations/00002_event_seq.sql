-- The log's order is a gap-free sequence, not its timestamps: two events
-- in one millisecond keep the order they happened in, and a reader tailing
-- the log by seq never skips a row (db.NextSeq). Existing rows are numbered
-- in their old (at, id) order.
-- +goose Up
ALTER TABLE registry_events ADD COLUMN seq BIGINT NOT NULL DEFAULT 0;
UPDATE registry_events SET seq = (SELECT COUNT(*) FROM registry_events e2
    WHERE e2.at < registry_events.at OR (e2.at = registry_events.at AND e2.id <= registry_events.id));
CREATE UNIQUE INDEX registry_events_seq ON registry_events (seq);
CREATE INDEX registry_events_product_seq ON registry_events (product, seq);

-- +goose Down
DROP INDEX registry_events_product_seq;
DROP INDEX registry_events_seq;
ALTER TABLE registry_events DROP COLUMN seq;
