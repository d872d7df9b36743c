-- +goose Up
-- The scrub's last word on each release artifact (the registry's blobs),
-- kept apart from escrow_blobs, which only the escrow's own blobs enter.
CREATE TABLE escrow_artifact_checks (
    digest     TEXT PRIMARY KEY,
    status     TEXT NOT NULL,
    detail     TEXT NOT NULL,
    checked_at BIGINT NOT NULL
);
CREATE INDEX escrow_artifact_checks_status ON escrow_artifact_checks (status);
-- +goose Down
DROP TABLE escrow_artifact_checks;
