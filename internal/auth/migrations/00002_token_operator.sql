-- +goose Up
-- The operator organisation an admin bound a builder token to; '' is
-- unbound, and an unbound builder counts for nothing in a quorum.
ALTER TABLE tokens ADD COLUMN operator TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE tokens DROP COLUMN operator;
