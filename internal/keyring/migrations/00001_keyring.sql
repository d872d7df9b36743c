-- +goose Up
-- The keys a database was initialised with, by fingerprint: a replica
-- whose key directory does not hold exactly these refuses to start.
CREATE TABLE keyring_keys (
    name        TEXT PRIMARY KEY,
    file        TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    recorded    BIGINT NOT NULL
);

-- +goose Down
DROP TABLE keyring_keys;
