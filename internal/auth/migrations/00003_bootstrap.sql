-- +goose Up
-- The one bootstrap admin token of a database: the first replica to insert
-- the row makes the token, every later one finds the row and makes none.
CREATE TABLE auth_bootstrap (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    token   TEXT NOT NULL,
    created BIGINT NOT NULL
);
-- A database from before this table already made its bootstrap token(s).
INSERT INTO auth_bootstrap (id, token, created)
SELECT 1, id, created FROM tokens WHERE name = 'bootstrap-admin' ORDER BY created LIMIT 1;

-- +goose Down
DROP TABLE auth_bootstrap;
