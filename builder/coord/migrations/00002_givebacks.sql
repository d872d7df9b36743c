-- +goose Up
ALTER TABLE farm_jobs ADD COLUMN givebacks INTEGER NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE farm_jobs DROP COLUMN givebacks;
