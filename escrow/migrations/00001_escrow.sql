-- +goose Up
CREATE TABLE escrow_deposits (
    id              TEXT PRIMARY KEY,
    product         TEXT NOT NULL,
    org             TEXT NOT NULL,
    policy          TEXT NOT NULL,
    state           TEXT NOT NULL,
    manifest_digest TEXT NOT NULL,
    files           INTEGER NOT NULL,
    total_size      BIGINT NOT NULL,
    created_by      TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    sealed_at       BIGINT NOT NULL DEFAULT 0,
    released_at     BIGINT NOT NULL DEFAULT 0,
    released_by     TEXT NOT NULL DEFAULT '',
    fired           TEXT NOT NULL DEFAULT '',
    receipt         TEXT NOT NULL DEFAULT ''
);
CREATE INDEX escrow_deposits_state ON escrow_deposits (state, created_at);
CREATE INDEX escrow_deposits_org ON escrow_deposits (org, state);

CREATE TABLE escrow_files (
    deposit       TEXT NOT NULL,
    path          TEXT NOT NULL,
    kind          TEXT NOT NULL,
    size          BIGINT NOT NULL,
    sha256        TEXT NOT NULL,
    link          TEXT NOT NULL,
    cipher_digest TEXT NOT NULL DEFAULT '',
    uploaded      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (deposit, path)
);
CREATE INDEX escrow_files_sha256 ON escrow_files (sha256);

CREATE TABLE escrow_events (
    id      TEXT PRIMARY KEY,
    deposit TEXT NOT NULL,
    at      BIGINT NOT NULL,
    actor   TEXT NOT NULL,
    kind    TEXT NOT NULL,
    policy  TEXT NOT NULL,
    details TEXT NOT NULL
);
CREATE INDEX escrow_events_deposit ON escrow_events (deposit, at);
CREATE INDEX escrow_events_kind ON escrow_events (kind, at);

CREATE TABLE escrow_checkins (
    org   TEXT PRIMARY KEY,
    at    BIGINT NOT NULL,
    actor TEXT NOT NULL
);

CREATE TABLE escrow_trustees (
    name       TEXT PRIMARY KEY,
    public_key TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    created_by TEXT NOT NULL
);

CREATE TABLE escrow_approvals (
    deposit   TEXT NOT NULL,
    trustee   TEXT NOT NULL,
    at        BIGINT NOT NULL,
    signature TEXT NOT NULL,
    PRIMARY KEY (deposit, trustee)
);

CREATE TABLE escrow_blobs (
    digest     TEXT PRIMARY KEY,
    role       TEXT NOT NULL,
    size       BIGINT NOT NULL,
    status     TEXT NOT NULL,
    checked_at BIGINT NOT NULL,
    detail     TEXT NOT NULL
);
CREATE INDEX escrow_blobs_status ON escrow_blobs (status);

CREATE TABLE escrow_scrubs (
    id          TEXT PRIMARY KEY,
    started_at  BIGINT NOT NULL,
    finished_at BIGINT NOT NULL,
    started_by  TEXT NOT NULL,
    checked     INTEGER NOT NULL,
    corrupt     INTEGER NOT NULL,
    missing     INTEGER NOT NULL
);

-- +goose Down
DROP TABLE escrow_scrubs;
DROP TABLE escrow_blobs;
DROP TABLE escrow_approvals;
DROP TABLE escrow_trustees;
DROP TABLE escrow_checkins;
DROP TABLE escrow_events;
DROP TABLE escrow_files;
DROP TABLE escrow_deposits;
