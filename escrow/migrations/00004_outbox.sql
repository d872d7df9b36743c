-- +goose Up
-- The after-release outbox. A release cannot share a transaction with the
-- parts that must hear of it (the catalog's hand-over, the transparency
-- log), so the release's own transaction records one notice and one
-- delivery per consumer; a worker delivers them, with backoff, until each
-- consumer has acknowledged its delivery (done_at > 0). A delivery is held
-- by whoever claimed it until claimed_until, so two deliverers never run it
-- at once; a claim left by a crash runs out and the delivery runs again.
CREATE TABLE escrow_outbox (
    id      TEXT PRIMARY KEY,
    deposit TEXT NOT NULL,
    product TEXT NOT NULL,
    org     TEXT NOT NULL,
    fired   TEXT NOT NULL,
    actor   TEXT NOT NULL,
    at      BIGINT NOT NULL
);

CREATE TABLE escrow_outbox_deliveries (
    notice        TEXT NOT NULL,
    consumer      TEXT NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    due_at        BIGINT NOT NULL,
    claimed_by    TEXT NOT NULL DEFAULT '',
    claimed_until BIGINT NOT NULL DEFAULT 0,
    done_at       BIGINT NOT NULL DEFAULT 0,
    last_error    TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (notice, consumer)
);
CREATE INDEX escrow_outbox_deliveries_pending ON escrow_outbox_deliveries (done_at, due_at);

-- +goose Down
DROP INDEX escrow_outbox_deliveries_pending;
DROP TABLE escrow_outbox_deliveries;
DROP TABLE escrow_outbox;
