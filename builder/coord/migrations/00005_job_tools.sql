-- +goose Up
-- The tools a job's recipe declares beside its toolchain (SBOM generators,
-- each at one pinned version), as JSON: only a builder that has every one
-- of them may lease the job. Empty for jobs that declare none.
ALTER TABLE farm_jobs ADD COLUMN tools TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE farm_jobs DROP COLUMN tools;
