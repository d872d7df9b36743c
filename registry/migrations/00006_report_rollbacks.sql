-- +goose Up
-- A failed install the device undid (it went back to the firmware it ran
-- before) says so, for the owner page's install reports over time.
ALTER TABLE install_reports ADD COLUMN rolled_back INTEGER NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE install_reports DROP COLUMN rolled_back;
