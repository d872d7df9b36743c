-- +goose Up
-- The search index (SQLite): one document per product, its vendor's
-- display name, the vendor org, the model, the product id and its device
-- ids, lowercased, in product_search; an FTS5 index with the trigram
-- tokenizer over it finds any substring of three characters or more.
-- Triggers keep both in step with products and vendor_names, whatever
-- writes them; a retired product (00007) has no document. docid is an
-- INTEGER PRIMARY KEY so that VACUUM keeps it.
CREATE TABLE product_search (
    docid   INTEGER PRIMARY KEY,
    product TEXT NOT NULL UNIQUE,
    doc     TEXT NOT NULL
);
CREATE VIRTUAL TABLE product_search_fts USING fts5(
    doc, content = 'product_search', content_rowid = 'docid', tokenize = 'trigram'
);
-- Every search reads each segment of the index: merge them as soon as two
-- of a size exist (FTS5's default waits for four), since products are
-- written seldom and searched often.
INSERT INTO product_search_fts (product_search_fts, rank) VALUES ('automerge', 2);

-- +goose StatementBegin
CREATE TRIGGER product_search_fts_insert AFTER INSERT ON product_search BEGIN
    INSERT INTO product_search_fts (rowid, doc) VALUES (new.docid, new.doc);
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER product_search_fts_delete AFTER DELETE ON product_search BEGIN
    INSERT INTO product_search_fts (product_search_fts, rowid, doc) VALUES ('delete', old.docid, old.doc);
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER product_search_fts_update AFTER UPDATE ON product_search BEGIN
    INSERT INTO product_search_fts (product_search_fts, rowid, doc) VALUES ('delete', old.docid, old.doc);
    INSERT INTO product_search_fts (rowid, doc) VALUES (new.docid, new.doc);
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER product_search_product_insert AFTER INSERT ON products BEGIN
    INSERT INTO product_search (product, doc) SELECT new.id, lower(
        COALESCE((SELECT name FROM vendor_names WHERE org = new.vendor), '') || ' ' || new.vendor || ' ' ||
        new.model || ' ' || new.id || ' ' || replace(replace(replace(new.device_ids, '"', ' '), '[', ' '), ']', ' '))
    WHERE new.retired_at = 0;
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER product_search_product_update AFTER UPDATE ON products BEGIN
    DELETE FROM product_search WHERE product = old.id;
    INSERT INTO product_search (product, doc) SELECT new.id, lower(
        COALESCE((SELECT name FROM vendor_names WHERE org = new.vendor), '') || ' ' || new.vendor || ' ' ||
        new.model || ' ' || new.id || ' ' || replace(replace(replace(new.device_ids, '"', ' '), '[', ' '), ']', ' '))
    WHERE new.retired_at = 0;
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER product_search_product_delete AFTER DELETE ON products BEGIN
    DELETE FROM product_search WHERE product = old.id;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER product_search_vendor_insert AFTER INSERT ON vendor_names BEGIN
    UPDATE product_search SET doc = (SELECT lower(
        new.name || ' ' || p.vendor || ' ' || p.model || ' ' || p.id || ' ' ||
        replace(replace(replace(p.device_ids, '"', ' '), '[', ' '), ']', ' ')) FROM products p WHERE p.id = product_search.product)
    WHERE product IN (SELECT id FROM products WHERE vendor = new.org);
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER product_search_vendor_update AFTER UPDATE ON vendor_names BEGIN
    UPDATE product_search SET doc = (SELECT lower(
        new.name || ' ' || p.vendor || ' ' || p.model || ' ' || p.id || ' ' ||
        replace(replace(replace(p.device_ids, '"', ' '), '[', ' '), ']', ' ')) FROM products p WHERE p.id = product_search.product)
    WHERE product IN (SELECT id FROM products WHERE vendor = new.org);
END;
-- +goose StatementEnd

INSERT INTO product_search (product, doc)
SELECT id, lower(COALESCE((SELECT name FROM vendor_names WHERE org = products.vendor), '') || ' ' || vendor || ' ' ||
    model || ' ' || id || ' ' || replace(replace(replace(device_ids, '"', ' '), '[', ' '), ']', ' '))
FROM products WHERE retired_at = 0;

-- +goose Down
DROP TRIGGER product_search_vendor_update;
DROP TRIGGER product_search_vendor_insert;
DROP TRIGGER product_search_product_delete;
DROP TRIGGER product_search_product_update;
DROP TRIGGER product_search_product_insert;
DROP TRIGGER product_search_fts_update;
DROP TRIGGER product_search_fts_delete;
DROP TRIGGER product_search_fts_insert;
DROP TABLE product_search_fts;
DROP TABLE product_search;
