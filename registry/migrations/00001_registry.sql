-- +goose Up
CREATE TABLE releases (
    id             TEXT PRIMARY KEY,
    product        TEXT NOT NULL,
    version        TEXT NOT NULL,
    channel        TEXT NOT NULL,
    notes          TEXT NOT NULL,
    min_version    TEXT NOT NULL,
    build_id       TEXT NOT NULL,
    recipe         TEXT NOT NULL,
    recipe_version TEXT NOT NULL,
    install_notes  TEXT NOT NULL,
    verdict_url    TEXT NOT NULL,
    attestations_url TEXT NOT NULL,
    agreeing       INTEGER NOT NULL,
    total          INTEGER NOT NULL,
    artifacts      TEXT NOT NULL,
    community      INTEGER NOT NULL,
    yanked         INTEGER NOT NULL DEFAULT 0,
    yank_reason    TEXT NOT NULL DEFAULT '',
    yanked_at      BIGINT NOT NULL DEFAULT 0,
    pulled_back    INTEGER NOT NULL DEFAULT 0,
    published_at   BIGINT NOT NULL,
    published_by   TEXT NOT NULL,
    promoted_at    BIGINT NOT NULL DEFAULT 0,
    UNIQUE (product, version)
);
CREATE INDEX releases_product ON releases (product, published_at);

CREATE TABLE product_maintainers (
    product    TEXT NOT NULL,
    grantee    TEXT NOT NULL,
    granted_at BIGINT NOT NULL,
    granted_by TEXT NOT NULL,
    PRIMARY KEY (product, grantee)
);

CREATE TABLE registry_generation (
    id         INTEGER PRIMARY KEY,
    generation BIGINT NOT NULL
);
INSERT INTO registry_generation (id, generation) VALUES (1, 1);

CREATE TABLE registry_events (
    id         TEXT PRIMARY KEY,
    product    TEXT NOT NULL,
    release_id TEXT NOT NULL,
    at         BIGINT NOT NULL,
    actor      TEXT NOT NULL,
    kind       TEXT NOT NULL,
    detail     TEXT NOT NULL
);
CREATE INDEX registry_events_product ON registry_events (product, at);

CREATE TABLE install_reports (
    id         TEXT PRIMARY KEY,
    release_id TEXT NOT NULL,
    device_id  TEXT NOT NULL,
    version    TEXT NOT NULL,
    outcome    TEXT NOT NULL,
    reason     TEXT NOT NULL,
    at         BIGINT NOT NULL
);
CREATE INDEX install_reports_release ON install_reports (release_id, outcome);

CREATE TABLE pullback_policies (
    product         TEXT PRIMARY KEY,
    min_failures    INTEGER NOT NULL,
    failure_percent INTEGER NOT NULL,
    updated_at      BIGINT NOT NULL,
    updated_by      TEXT NOT NULL
);

-- +goose Down
DROP TABLE pullback_policies;
DROP TABLE install_reports;
DROP TABLE registry_events;
DROP TABLE registry_generation;
DROP TABLE product_maintainers;
DROP TABLE releases;
