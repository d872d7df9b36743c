-- +goose Up
-- Handover statements that took effect (their deposit was released and
-- the vendor did not revoke them), served unchanged to devices. One row
-- per deposit; rows are never changed or deleted.
CREATE TABLE product_handovers (
    deposit          TEXT PRIMARY KEY,
    product          TEXT NOT NULL,
    envelope         TEXT NOT NULL,
    envelope_sha256  TEXT NOT NULL,
    vendor_key       TEXT NOT NULL,
    root_name        TEXT NOT NULL,
    root_sha256      TEXT NOT NULL,
    device_ids       TEXT NOT NULL,
    released_at      BIGINT NOT NULL,
    -- the deposit's bridge image (its path, sha256 and size), or ''/0
    bridge_path      TEXT NOT NULL DEFAULT '',
    bridge_sha256    TEXT NOT NULL DEFAULT '',
    bridge_size      BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX product_handovers_product ON product_handovers (product, released_at);

-- +goose Down
DROP TABLE product_handovers;
