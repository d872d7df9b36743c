-- +goose Up
-- The search index (PostgreSQL): one document per product, its vendor's
-- display name, the vendor org, the model, the product id and its device
-- ids, lowercased, in product_search, with a pg_trgm GIN index that
-- answers LIKE '%…%' and word similarity (<%). Triggers keep it in step
-- with products and vendor_names, whatever writes them; a retired
-- product (00007) has no document. Products are
-- written seldom and searched often: the index takes each write at once
-- (fastupdate off) rather than keeping a pending list every search scans.
--
-- pg_trgm is a trusted extension (PostgreSQL 13 and later): the database's
-- owner may create it without being a superuser. Where afterlife's role
-- may not, an administrator runs CREATE EXTENSION pg_trgm once in the
-- database before the upgrade, and IF NOT EXISTS lets this pass.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE product_search (
    product TEXT PRIMARY KEY,
    doc     TEXT NOT NULL
);
CREATE INDEX product_search_doc ON product_search USING gin (doc gin_trgm_ops) WITH (fastupdate = off);

-- +goose StatementBegin
CREATE FUNCTION product_search_doc(vendor_name TEXT, vendor TEXT, model TEXT, id TEXT, device_ids TEXT) RETURNS TEXT
LANGUAGE sql IMMUTABLE AS $$
    SELECT lower(COALESCE(vendor_name, '') || ' ' || vendor || ' ' || model || ' ' || id || ' ' || translate(device_ids, '"[]', '   '))
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION product_search_product_sync() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        DELETE FROM product_search WHERE product = OLD.id;
        RETURN OLD;
    END IF;
    IF TG_OP = 'UPDATE' AND (OLD.id <> NEW.id OR NEW.retired_at <> 0) THEN
        DELETE FROM product_search WHERE product = OLD.id;
    END IF;
    IF NEW.retired_at <> 0 THEN
        RETURN NEW; -- a retired product is found by nothing
    END IF;
    INSERT INTO product_search (product, doc)
    VALUES (NEW.id, product_search_doc((SELECT name FROM vendor_names WHERE org = NEW.vendor), NEW.vendor, NEW.model, NEW.id, NEW.device_ids))
    ON CONFLICT (product) DO UPDATE SET doc = excluded.doc;
    RETURN NEW;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER product_search_product AFTER INSERT OR UPDATE OR DELETE ON products
    FOR EACH ROW EXECUTE FUNCTION product_search_product_sync();

-- +goose StatementBegin
CREATE FUNCTION product_search_vendor_sync() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE product_search s SET doc = product_search_doc(NEW.name, p.vendor, p.model, p.id, p.device_ids)
    FROM products p WHERE p.vendor = NEW.org AND s.product = p.id;
    RETURN NEW;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER product_search_vendor AFTER INSERT OR UPDATE ON vendor_names
    FOR EACH ROW EXECUTE FUNCTION product_search_vendor_sync();

INSERT INTO product_search (product, doc)
SELECT id, product_search_doc((SELECT name FROM vendor_names WHERE org = products.vendor), vendor, model, id, device_ids) FROM products WHERE retired_at = 0;

-- +goose Down
DROP TRIGGER product_search_vendor ON vendor_names;
DROP TRIGGER product_search_product ON products;
DROP FUNCTION product_search_vendor_sync();
DROP FUNCTION product_search_product_sync();
DROP FUNCTION product_search_doc(TEXT, TEXT, TEXT, TEXT, TEXT);
DROP TABLE product_search;
