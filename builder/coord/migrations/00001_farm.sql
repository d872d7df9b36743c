-- +goose Up
CREATE TABLE farm_builders (
    id            TEXT PRIMARY KEY,
    token_id      TEXT NOT NULL UNIQUE,
    name          TEXT NOT NULL,
    operator      TEXT NOT NULL,
    public_key    TEXT NOT NULL,
    key_id        TEXT NOT NULL,
    arch          TEXT NOT NULL,
    toolchains    TEXT NOT NULL,
    agent_version TEXT NOT NULL,
    registered    BIGINT NOT NULL,
    last_seen     BIGINT NOT NULL
);

CREATE TABLE farm_builds (
    id           TEXT PRIMARY KEY,
    repo         TEXT NOT NULL,
    commit_id    TEXT NOT NULL,
    path         TEXT NOT NULL,
    name         TEXT NOT NULL,
    version      TEXT NOT NULL,
    spec         TEXT NOT NULL,
    state        TEXT NOT NULL,
    verdict      TEXT NOT NULL,
    quorum       INTEGER NOT NULL,
    requested_by TEXT NOT NULL,
    created      BIGINT NOT NULL,
    decided      BIGINT NOT NULL,
    UNIQUE (repo, commit_id, path)
);
CREATE INDEX farm_builds_state ON farm_builds (state, created);

CREATE TABLE farm_build_products (
    build_id TEXT NOT NULL REFERENCES farm_builds (id),
    product  TEXT NOT NULL,
    PRIMARY KEY (build_id, product)
);
CREATE INDEX farm_build_products_product ON farm_build_products (product);

CREATE TABLE farm_jobs (
    id                TEXT PRIMARY KEY,
    build_id          TEXT NOT NULL REFERENCES farm_builds (id),
    state             TEXT NOT NULL,
    builder_id        TEXT NOT NULL,
    operator          TEXT NOT NULL,
    toolchain         TEXT NOT NULL,
    toolchain_version TEXT NOT NULL,
    arch              TEXT NOT NULL,
    lease_until       BIGINT NOT NULL,
    attempts          INTEGER NOT NULL,
    created           BIGINT NOT NULL,
    started           BIGINT NOT NULL,
    finished          BIGINT NOT NULL
);
CREATE INDEX farm_jobs_state ON farm_jobs (state, created);
CREATE INDEX farm_jobs_build ON farm_jobs (build_id);

CREATE TABLE farm_results (
    job_id      TEXT PRIMARY KEY REFERENCES farm_jobs (id),
    build_id    TEXT NOT NULL REFERENCES farm_builds (id),
    builder_id  TEXT NOT NULL,
    operator    TEXT NOT NULL,
    outputs     TEXT NOT NULL,
    buildinfo   TEXT NOT NULL,
    attestation TEXT NOT NULL,
    log         TEXT NOT NULL,
    failed      INTEGER NOT NULL,
    reason      TEXT NOT NULL,
    created     BIGINT NOT NULL
);
CREATE INDEX farm_results_build ON farm_results (build_id);

CREATE TABLE farm_logs (
    job_id TEXT NOT NULL REFERENCES farm_jobs (id),
    seq    BIGINT NOT NULL,
    pos    BIGINT NOT NULL,
    data   TEXT NOT NULL,
    PRIMARY KEY (job_id, seq)
);

CREATE TABLE farm_diffs (
    build_id TEXT NOT NULL REFERENCES farm_builds (id),
    path     TEXT NOT NULL,
    digest_a TEXT NOT NULL,
    digest_b TEXT NOT NULL,
    report   TEXT NOT NULL,
    created  BIGINT NOT NULL,
    PRIMARY KEY (build_id, path)
);

-- +goose Down
DROP TABLE farm_diffs;
DROP TABLE farm_logs;
DROP TABLE farm_results;
DROP TABLE farm_jobs;
DROP TABLE farm_build_products;
DROP TABLE farm_builds;
DROP TABLE farm_builders;
