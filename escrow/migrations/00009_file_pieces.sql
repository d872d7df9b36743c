-- A sealed file is stored as its ordered pieces (docs/escrow.md, "How a
-- sealed file is stored"): the pieces an upload arrived in stay the file's
-- ciphertext, each an age stream to the escrow key, instead of being
-- decrypted and encrypted again as one. A file whose escrow_files row
-- names a cipher_digest (every file sealed before this table, and every
-- file that arrived as one piece) is a one-piece file and has no rows
-- here; a file of several pieces has an empty cipher_digest and one row
-- per piece, in order.
-- +goose Up
CREATE TABLE escrow_file_pieces (
    deposit TEXT NOT NULL,
    path TEXT NOT NULL,
    seq INTEGER NOT NULL,
    first_byte BIGINT NOT NULL,
    size BIGINT NOT NULL,
    cipher_digest TEXT NOT NULL,
    cipher_size BIGINT NOT NULL,
    PRIMARY KEY (deposit, path, seq)
);

-- +goose Down
DROP TABLE escrow_file_pieces;
