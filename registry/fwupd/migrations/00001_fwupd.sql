-- +goose Up
-- One cabinet per exported release, built once: its bytes are in the blob
-- store under digest, its name never changes.
CREATE TABLE fwupd_cabs (
    release_id TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    digest     TEXT NOT NULL,
    sha1       TEXT NOT NULL,
    size       BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX fwupd_cabs_name ON fwupd_cabs (name);

-- Every published pair of remote metadata and its Jcat file. Inserting a
-- row is the one step that publishes both; rows are never changed.
CREATE TABLE fwupd_generations (
    generation      BIGINT PRIMARY KEY,
    metadata_digest TEXT NOT NULL,
    metadata_size   BIGINT NOT NULL,
    jcat_digest     TEXT NOT NULL,
    jcat_size       BIGINT NOT NULL,
    releases        INTEGER NOT NULL,
    published_at    BIGINT NOT NULL
);

-- +goose Down
DROP TABLE fwupd_generations;
DROP TABLE fwupd_cabs;
