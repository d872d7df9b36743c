-- +goose Up
-- The cold witness: one job of every build runs with empty caches, and a
-- build is reproducible only when that job agrees. Jobs still queued when
-- this ships become cold, so builds in flight can still be decided.
ALTER TABLE farm_jobs ADD COLUMN cold INTEGER NOT NULL DEFAULT 0;
ALTER TABLE farm_results ADD COLUMN cold INTEGER NOT NULL DEFAULT 0;
UPDATE farm_jobs SET cold = 1 WHERE state = 'queued';

-- +goose Down
ALTER TABLE farm_results DROP COLUMN cold;
ALTER TABLE farm_jobs DROP COLUMN cold;
