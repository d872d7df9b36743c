-- +goose Up
-- The display names of vendor organisations ("Lumatek Home" for the org
-- lumatek), copied here from the organisations whenever one is created or
-- renamed, so the catalog's search index can hold them: a person looks a
-- device up by the name on its box, not by an org id.
CREATE TABLE vendor_names (
    org  TEXT PRIMARY KEY,
    name TEXT NOT NULL
);

-- +goose Down
DROP TABLE vendor_names;
