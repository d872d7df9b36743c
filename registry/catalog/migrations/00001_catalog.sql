-- +goose Up
CREATE TABLE products (
    id          TEXT PRIMARY KEY,
    vendor      TEXT NOT NULL,
    model       TEXT NOT NULL,
    revisions   TEXT NOT NULL,
    device_ids  TEXT NOT NULL,
    eol         BIGINT NOT NULL,
    status      TEXT NOT NULL,
    risk_notes  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    created_by  TEXT NOT NULL
);
CREATE INDEX products_vendor ON products (vendor);

CREATE TABLE product_device_ids (
    device_id TEXT NOT NULL,
    product   TEXT NOT NULL,
    PRIMARY KEY (device_id, product)
);
CREATE INDEX product_device_ids_product ON product_device_ids (product);

CREATE TABLE product_events (
    id          TEXT PRIMARY KEY,
    product     TEXT NOT NULL,
    at          BIGINT NOT NULL,
    actor       TEXT NOT NULL,
    from_status TEXT NOT NULL,
    to_status   TEXT NOT NULL
);
CREATE INDEX product_events_product ON product_events (product, at);

-- +goose Down
DROP TABLE product_events;
DROP TABLE product_device_ids;
DROP TABLE products;
