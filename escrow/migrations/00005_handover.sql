-- +goose Up
-- Handover statements carried by deposits (the file wire.HandoverFile).
-- A statement is checked when its file is uploaded (state checked),
-- claims its device ids when the deposit is sealed (claimed), and may be
-- revoked by its vendor while the deposit is still sealed (revoked). The
-- first claim of a device id wins: escrow_handover_claims holds one row
-- per device id, removed only by a revocation.
CREATE TABLE escrow_handovers (
    deposit         TEXT PRIMARY KEY,
    product         TEXT NOT NULL,
    vendor_key      TEXT NOT NULL,
    root_name       TEXT NOT NULL,
    root_sha256     TEXT NOT NULL,
    root_version    BIGINT NOT NULL,
    envelope_sha256 TEXT NOT NULL,
    device_ids      TEXT NOT NULL,
    state           TEXT NOT NULL,
    checked_at      BIGINT NOT NULL,
    revoked_at      BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE escrow_handover_claims (
    device_id  TEXT PRIMARY KEY,
    deposit    TEXT NOT NULL,
    claimed_at BIGINT NOT NULL
);
CREATE INDEX escrow_handover_claims_deposit ON escrow_handover_claims (deposit);
-- +goose Down
DROP TABLE escrow_handover_claims;
DROP TABLE escrow_handovers;
