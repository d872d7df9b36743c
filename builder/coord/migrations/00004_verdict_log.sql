-- The farm's append-only log of decided builds, in the order they were
-- decided, with a gap-free seq (db.NextSeq): the transparency log reads
-- it. Builds decided before it existed are numbered in (decided, id) order.
-- +goose Up
CREATE TABLE farm_verdict_log (
    seq      BIGINT NOT NULL,
    build_id TEXT PRIMARY KEY REFERENCES farm_builds (id),
    at       BIGINT NOT NULL
);
INSERT INTO farm_verdict_log (seq, build_id, at)
    SELECT ROW_NUMBER() OVER (ORDER BY decided, id), id, decided FROM farm_builds WHERE state <> 'pending';
CREATE UNIQUE INDEX farm_verdict_log_seq ON farm_verdict_log (seq);

-- +goose Down
DROP TABLE farm_verdict_log;
