-- The log's order is a gap-free sequence, not its timestamps: two events
-- in one millisecond keep the order they happened in, and a reader tailing
-- the log by seq never skips a row (db.NextSeq). Existing rows are numbered
-- in their old (at, id) order.
-- +goose Up
ALTER TABLE escrow_events ADD COLUMN seq BIGINT NOT NULL DEFAULT 0;
UPDATE escrow_events SET seq = (SELECT COUNT(*) FROM escrow_events e2
    WHERE e2.at < escrow_events.at OR (e2.at = escrow_events.at AND e2.id <= escrow_events.id));
CREATE UNIQUE INDEX escrow_events_seq ON escrow_events (seq);
CREATE INDEX escrow_events_deposit_seq ON escrow_events (deposit, seq);

-- +goose Down
DROP INDEX escrow_events_deposit_seq;
DROP INDEX escrow_events_seq;
ALTER TABLE escrow_events DROP COLUMN seq;
