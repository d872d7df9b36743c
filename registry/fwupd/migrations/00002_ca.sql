-- +goose Up
-- The fingerprint of the CA certificate the first replica served: every
-- replica must serve metadata signed under the same CA, or devices that
-- trust it refuse what the others sign.
CREATE TABLE fwupd_ca (
    id          TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    subject     TEXT NOT NULL,
    recorded_at BIGINT NOT NULL
);

-- +goose Down
DROP TABLE fwupd_ca;
