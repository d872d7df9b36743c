-- A product's declared support period (general availability, end of
-- sales, end of security support, end of life) as JSON (catalog.Support),
-- and on each event the declaration it made, if any: a change of the
-- support period is an event of the product's log like a status change.
-- +goose Up
ALTER TABLE products ADD COLUMN support TEXT NOT NULL DEFAULT '';
ALTER TABLE product_events ADD COLUMN support TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE product_events DROP COLUMN support;
ALTER TABLE products DROP COLUMN support;
