-- Uploads resume within a file (docs/escrow.md, "Resuming within a
-- file"): while a file arrives, the server stores it as pieces, each
-- encrypted to the escrow key on its own and kept as a blob, with the
-- sha256 state of the plaintext up to the piece's end. A cut connection
-- keeps every byte that arrived; a crash keeps every finished piece. When
-- the last byte arrives the pieces become the file's one ciphertext and
-- their rows go.
-- +goose Up
CREATE TABLE escrow_upload_parts (
    deposit TEXT NOT NULL,
    path TEXT NOT NULL,
    seq INTEGER NOT NULL,
    first_byte BIGINT NOT NULL,
    size BIGINT NOT NULL,
    cipher_digest TEXT NOT NULL,
    cipher_size BIGINT NOT NULL,
    hash_state TEXT NOT NULL,
    prefix_sha256 TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (deposit, path, seq)
);

-- +goose Down
DROP TABLE escrow_upload_parts;
