-- A vendor may correct a product's description (model, hardware
-- revisions, device ids, risk notes) and retire a product registered by
-- mistake; both are events of the product's log like a status change.
-- edit holds what the event changed (catalog.Change as JSON; '' for
-- status changes and support declarations). A retired product keeps its
-- row and its id, which is never given to another product, and
-- disappears from every list, search and lookup.
-- +goose Up
ALTER TABLE product_events ADD COLUMN edit TEXT NOT NULL DEFAULT '';
ALTER TABLE products ADD COLUMN retired_at BIGINT NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE products DROP COLUMN retired_at;
ALTER TABLE product_events DROP COLUMN edit;
