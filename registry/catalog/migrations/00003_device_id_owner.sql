-- +goose Up
-- A device id belongs to at most one product. Where earlier versions let
-- several products claim one id, the product registered first keeps it
-- (ties: the smaller product id) and the later claims are dropped here;
-- catalog.New then drops them from the products' device_ids lists too and
-- reports each one, so serve can log it with the command that reassigns it.
DELETE FROM product_device_ids
WHERE EXISTS (
    SELECT 1 FROM product_device_ids o
    JOIN products po ON po.id = o.product
    JOIN products pr ON pr.id = product_device_ids.product
    WHERE o.device_id = product_device_ids.device_id
      AND (po.created_at < pr.created_at OR (po.created_at = pr.created_at AND po.id < pr.id))
);
CREATE UNIQUE INDEX product_device_ids_one_owner ON product_device_ids (device_id);

-- +goose Down
DROP INDEX product_device_ids_one_owner;
