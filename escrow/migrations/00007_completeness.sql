-- The sealed completeness check (docs/vendors-rights.md, "Proving your
-- deposit is complete"): a deposit may mark the image its vendor last
-- shipped (a private file of the deposit) and name a recipe file in it; the
-- server's own machine rebuilds the deposit with that recipe and stores one
-- report per deposit. The score and counts are public once the deposit is
-- released (or its vendor publishes them); the per-file report never is.
-- +goose Up
ALTER TABLE escrow_deposits ADD COLUMN shipped_image TEXT NOT NULL DEFAULT '';
ALTER TABLE escrow_deposits ADD COLUMN completeness_recipe TEXT NOT NULL DEFAULT '';
CREATE TABLE escrow_completeness (
    deposit TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    percent INTEGER NOT NULL DEFAULT 0,
    counts TEXT NOT NULL DEFAULT '{}',
    report TEXT NOT NULL DEFAULT '{}',
    error TEXT NOT NULL DEFAULT '',
    published INTEGER NOT NULL DEFAULT 0,
    requested_by TEXT NOT NULL,
    started BIGINT NOT NULL,
    finished BIGINT NOT NULL DEFAULT 0
);

-- +goose Down
DROP TABLE escrow_completeness;
ALTER TABLE escrow_deposits DROP COLUMN completeness_recipe;
ALTER TABLE escrow_deposits DROP COLUMN shipped_image;
