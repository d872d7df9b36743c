-- The entry that opened each commitment (-1 while sealed), so a released
-- deposit finds its release entry.
-- +goose Up
ALTER TABLE translog_commitments ADD COLUMN opened BIGINT NOT NULL DEFAULT -1;

-- +goose Down
ALTER TABLE translog_commitments DROP COLUMN opened;
