-- +goose Up
-- A yank keeps the release's targets, marked yanked; devices running a
-- yanked version may go back to the newest release their channel still
-- offers only when that release's signed fields say so: rollback_from
-- holds those versions and reasons (JSON, device.YankedFrom).
ALTER TABLE releases ADD COLUMN rollback_from TEXT NOT NULL DEFAULT '';
-- A phased rollout's schedule and state (JSON, registry.Rollout); empty
-- when the release goes to every device of its channel. The stage is
-- computed from the start and the dwell times, never stored per device.
ALTER TABLE releases ADD COLUMN rollout TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE releases DROP COLUMN rollout;
ALTER TABLE releases DROP COLUMN rollback_from;
