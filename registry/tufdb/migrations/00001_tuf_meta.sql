-- +goose Up
CREATE TABLE tuf_meta (
    name    TEXT PRIMARY KEY,
    data    TEXT NOT NULL,
    created BIGINT NOT NULL
);

-- +goose Down
DROP TABLE tuf_meta;
