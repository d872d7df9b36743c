-- The transparency log. Entries and the Merkle tree's stored hashes
-- (golang.org/x/mod/sumdb/tlog's numbering) are append-only; the served
-- tiles are read from translog_hashes. Each source's cursor moves in the
-- transaction that appends its events, so an event is logged exactly once.
-- +goose Up
CREATE TABLE translog_state (
    id         INTEGER PRIMARY KEY,
    origin     TEXT NOT NULL,
    vkey       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE translog_entries (
    idx        BIGINT PRIMARY KEY,
    source     TEXT NOT NULL,
    source_seq BIGINT NOT NULL,
    kind       TEXT NOT NULL,
    subject    TEXT NOT NULL,
    data       TEXT NOT NULL,
    at         BIGINT NOT NULL
);
CREATE UNIQUE INDEX translog_entries_source ON translog_entries (source, source_seq);
CREATE INDEX translog_entries_subject ON translog_entries (subject, idx);

CREATE TABLE translog_hashes (
    id   BIGINT PRIMARY KEY,
    hash TEXT NOT NULL
);

CREATE TABLE translog_cursors (
    source TEXT PRIMARY KEY,
    seq    BIGINT NOT NULL
);

-- The salts of sealed deposits' commitments: private until the release
-- entry reveals them.
CREATE TABLE translog_commitments (
    subject    TEXT PRIMARY KEY,
    salt       TEXT NOT NULL,
    commitment TEXT NOT NULL,
    idx        BIGINT NOT NULL
);

CREATE TABLE translog_checkpoints (
    size BIGINT PRIMARY KEY,
    note TEXT NOT NULL,
    at   BIGINT NOT NULL
);

-- Witnesses the registry knows: builders (bound to their operator by the
-- builder token) and outside witnesses (configured).
CREATE TABLE translog_witnesses (
    name     TEXT PRIMARY KEY,
    vkey     TEXT NOT NULL,
    operator TEXT NOT NULL,
    kind     TEXT NOT NULL,
    added_at BIGINT NOT NULL
);

CREATE TABLE translog_cosignatures (
    size    BIGINT NOT NULL,
    witness TEXT NOT NULL,
    line    TEXT NOT NULL,
    at      BIGINT NOT NULL,
    PRIMARY KEY (size, witness)
);

-- +goose Down
DROP TABLE translog_cosignatures;
DROP TABLE translog_witnesses;
DROP TABLE translog_checkpoints;
DROP TABLE translog_commitments;
DROP TABLE translog_cursors;
DROP TABLE translog_hashes;
DROP TABLE translog_entries;
DROP TABLE translog_state;
