-- +goose Up
-- Install reports count only with a download receipt: one per install id
-- and release (a device reporting again replaces its report), and the
-- source network (/24, /48) they came from. Reports stored before receipts
-- existed keep an empty install_id and are not counted.
ALTER TABLE install_reports ADD COLUMN install_id TEXT NOT NULL DEFAULT '';
ALTER TABLE install_reports ADD COLUMN network TEXT NOT NULL DEFAULT '';
CREATE UNIQUE INDEX install_reports_one_per_install ON install_reports (release_id, install_id) WHERE install_id <> '';

-- Failure reports from enough networks hold a release for review; a
-- maintainer of the product or an admin then pulls it back or resumes it.
ALTER TABLE releases ADD COLUMN held INTEGER NOT NULL DEFAULT 0;
ALTER TABLE releases ADD COLUMN held_reason TEXT NOT NULL DEFAULT '';
ALTER TABLE releases ADD COLUMN held_at BIGINT NOT NULL DEFAULT 0;

ALTER TABLE pullback_policies ADD COLUMN min_networks INTEGER NOT NULL DEFAULT 3;

-- +goose Down
ALTER TABLE pullback_policies DROP COLUMN min_networks;
ALTER TABLE releases DROP COLUMN held_at;
ALTER TABLE releases DROP COLUMN held_reason;
ALTER TABLE releases DROP COLUMN held;
DROP INDEX install_reports_one_per_install;
ALTER TABLE install_reports DROP COLUMN network;
ALTER TABLE install_reports DROP COLUMN install_id;
