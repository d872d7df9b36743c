-- +goose Up
-- The GUIDs fwupd knows a product's devices by (given as GUIDs or as
-- instance ids fwupd derives them from). Like a device id, a GUID belongs
-- to at most one product: the fwupd remote offers a product's firmware to
-- every device that reports one of them.
ALTER TABLE products ADD COLUMN fwupd_guids TEXT NOT NULL DEFAULT '[]';
CREATE TABLE product_fwupd_guids (
    guid    TEXT PRIMARY KEY,
    product TEXT NOT NULL
);
CREATE INDEX product_fwupd_guids_product ON product_fwupd_guids (product);

-- +goose Down
DROP TABLE product_fwupd_guids;
ALTER TABLE products DROP COLUMN fwupd_guids;
