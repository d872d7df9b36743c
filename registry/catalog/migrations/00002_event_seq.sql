-- The log's order is a gap-free sequence, not its timestamps: two events
-- in one millisecond keep the order they happened in, and a reader tailing
-- the log by seq never skips a row (db.NextSeq). Existing rows are numbered
-- in their old (at, id) order.
-- +goose Up
ALTER TABLE product_events ADD COLUMN seq BIGINT NOT NULL DEFAULT 0;
UPDATE product_events SET seq = (SELECT COUNT(*) FROM product_events e2
    WHERE e2.at < product_events.at OR (e2.at = product_events.at AND e2.id <= product_events.id));
CREATE UNIQUE INDEX product_events_seq ON product_events (seq);
CREATE INDEX product_events_product_seq ON product_events (product, seq);

-- +goose Down
DROP INDEX product_events_product_seq;
DROP INDEX product_events_seq;
ALTER TABLE product_events DROP COLUMN seq;
