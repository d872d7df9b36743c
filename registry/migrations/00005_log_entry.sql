-- +goose Up
-- The index of the release's publication entry in the transparency log,
-- signed into its targets once the log has appended it (logentries.go);
-- -1 until then.
ALTER TABLE releases ADD COLUMN log_entry BIGINT NOT NULL DEFAULT -1;

-- +goose Down
ALTER TABLE releases DROP COLUMN log_entry;
