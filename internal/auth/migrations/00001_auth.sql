-- +goose Up
CREATE TABLE orgs (
    id      TEXT PRIMARY KEY,
    name    TEXT NOT NULL,
    kind    TEXT NOT NULL,
    created BIGINT NOT NULL
);
CREATE TABLE tokens (
    id        TEXT PRIMARY KEY,
    hash      TEXT NOT NULL UNIQUE,
    name      TEXT NOT NULL,
    role      TEXT NOT NULL,
    org       TEXT NOT NULL DEFAULT '',
    created   BIGINT NOT NULL,
    expires   BIGINT NOT NULL DEFAULT 0,
    revoked   BIGINT NOT NULL DEFAULT 0,
    last_used BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX tokens_org ON tokens (org);

-- +goose Down
DROP TABLE tokens;
DROP TABLE orgs;
