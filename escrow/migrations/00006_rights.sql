-- Redistribution rights per deposited file (docs/vendors-rights.md): each
-- file has a class (public, build-only, private), given by the deposit's
-- rules (JSON, in order, the last match wins), and a deposit carries the
-- vendor's grant text. A new deposit's file that no rule names is private.
-- Deposits made before classes existed keep the rule they were made under,
-- which their version 1 receipts state: everything is published on
-- release. So released deposits stay public, and sealed ones still publish
-- what their vendor agreed to.
-- +goose Up
ALTER TABLE escrow_files ADD COLUMN rights TEXT NOT NULL DEFAULT 'private';
ALTER TABLE escrow_deposits ADD COLUMN rights TEXT NOT NULL DEFAULT '[]';
ALTER TABLE escrow_deposits ADD COLUMN grant_text TEXT NOT NULL DEFAULT '';
UPDATE escrow_files SET rights = 'public';
UPDATE escrow_deposits SET rights = '[{"pattern":"**","rights":"public"}]';
CREATE INDEX escrow_files_sha256_rights ON escrow_files (sha256, rights);

-- +goose Down
DROP INDEX escrow_files_sha256_rights;
ALTER TABLE escrow_deposits DROP COLUMN grant_text;
ALTER TABLE escrow_deposits DROP COLUMN rights;
ALTER TABLE escrow_files DROP COLUMN rights;
