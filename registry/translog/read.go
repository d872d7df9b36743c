package translog

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/transparency-dev/formats/proof"
	"github.com/transparency-dev/tessera/api/layout"

	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/errs"
)

// TileHeight is the C2SP tlog-tiles tile height: 2^8 hashes a tile.
const TileHeight = 8

// dbHashes reads stored hashes outside a transaction.
type dbHashes struct {
	ctx context.Context
	l   *Log
}

func (h dbHashes) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	return readHashes(h.ctx, h.l.db, h.l.db, nil, indexes)
}

// Checkpoint is the newest checkpoint that meets the witness policy
// (Options.Quorum), with the cosignatures witnesses made of it appended,
// and its size. It is errs.NotFound while there is none.
func (l *Log) Checkpoint(ctx context.Context) ([]byte, int64, error) {
	size, err := l.witnessedSize(ctx)
	if err != nil {
		return nil, 0, err
	}
	var signed string
	err = l.db.QueryRowContext(ctx, l.db.Q(`SELECT note FROM translog_checkpoints WHERE size = ?`), size).Scan(&signed)
	if err == sql.ErrNoRows {
		return nil, 0, errs.E(errs.NotFound, "the log has no checkpoint that %d independent witnesses cosigned yet", l.o.Quorum)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("translog: checkpoint: %w", db.Classify(err))
	}
	lines, err := l.cosignatureLines(ctx, size)
	if err != nil {
		return nil, 0, err
	}
	return []byte(signed + strings.Join(lines, "")), size, nil
}

// CheckpointAt is the log-signed checkpoint of size size, without
// cosignatures.
func (l *Log) CheckpointAt(ctx context.Context, size int64) ([]byte, error) {
	var signed string
	err := l.db.QueryRowContext(ctx, l.db.Q(`SELECT note FROM translog_checkpoints WHERE size = ?`), size).Scan(&signed)
	if err != nil {
		return nil, fmt.Errorf("translog: checkpoint at %d: %w", size, db.NotFound(err, "no checkpoint of size %d", size))
	}
	return []byte(signed), nil
}

func (l *Log) cosignatureLines(ctx context.Context, size int64) ([]string, error) {
	rows, err := l.db.QueryContext(ctx, l.db.Q(`SELECT line FROM translog_cosignatures WHERE size = ? ORDER BY witness`), size)
	if err != nil {
		return nil, fmt.Errorf("translog: cosignatures: %w", db.Classify(err))
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return nil, err
		}
		out = append(out, line)
	}
	return out, db.Classify(rows.Err())
}

// checkpointSize is the size of the newest checkpoint: what is served.
func (l *Log) checkpointSize(ctx context.Context) (int64, error) {
	var size int64
	if err := l.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(size), 0) FROM translog_checkpoints`).Scan(&size); err != nil {
		return 0, fmt.Errorf("translog: checkpoint size: %w", db.Classify(err))
	}
	return size, nil
}

// Tile is the C2SP tile at level, index with partial width w (0: full).
// Only tiles within the newest checkpoint exist.
func (l *Log) Tile(ctx context.Context, level, index uint64, w uint8) ([]byte, error) {
	size, err := l.checkpointSize(ctx)
	if err != nil {
		return nil, err
	}
	if level > 7 || !tileWithin(uint64(size)>>(TileHeight*level), index, w) {
		return nil, errs.E(errs.NotFound, "tile %d/%d is not in the log", level, index)
	}
	width := int(w)
	if width == 0 {
		width = layout.TileWidth
	}
	t := tlog.Tile{H: TileHeight, L: int(level), N: int64(index), W: width}
	data, err := tlog.ReadTileData(t, dbHashes{ctx, l})
	if err != nil {
		return nil, fmt.Errorf("translog: tile %s: %w", t.Path(), err)
	}
	return data, nil
}

// tileWithin reports whether a tile of count hashes at its level has the
// tile index with partial width w (0: full).
func tileWithin(count, index uint64, w uint8) bool {
	if w == 0 {
		return (index+1)*layout.TileWidth <= count
	}
	return index*layout.TileWidth+uint64(w) <= count && uint64(w) < layout.TileWidth
}

// EntryBundle is the C2SP entry bundle index with partial width w: each
// entry as a big-endian uint16 length and its bytes.
func (l *Log) EntryBundle(ctx context.Context, index uint64, w uint8) ([]byte, error) {
	size, err := l.checkpointSize(ctx)
	if err != nil {
		return nil, err
	}
	if !tileWithin(uint64(size), index, w) {
		return nil, errs.E(errs.NotFound, "entry bundle %d is not in the log", index)
	}
	n := uint64(w)
	if n == 0 {
		n = layout.EntryBundleWidth
	}
	from := index * layout.EntryBundleWidth
	rows, err := l.db.QueryContext(ctx, l.db.Q(`SELECT data FROM translog_entries WHERE idx >= ? AND idx < ? ORDER BY idx`), from, from+n)
	if err != nil {
		return nil, fmt.Errorf("translog: entry bundle %d: %w", index, db.Classify(err))
	}
	defer rows.Close()
	var out []byte
	got := uint64(0)
	for rows.Next() {
		var data string
		if err := rows.Scan(&data); err != nil {
			return nil, err
		}
		out = binary.BigEndian.AppendUint16(out, uint16(len(data)))
		out = append(out, data...)
		got++
	}
	if err := rows.Err(); err != nil {
		return nil, db.Classify(err)
	}
	if got != n {
		return nil, errs.E(errs.Internal, "translog: entry bundle %d holds %d entries, want %d", index, got, n)
	}
	return out, nil
}

// Entry is the entry at idx.
func (l *Log) Entry(ctx context.Context, idx int64) ([]byte, error) {
	var data string
	err := l.db.QueryRowContext(ctx, l.db.Q(`SELECT data FROM translog_entries WHERE idx = ?`), idx).Scan(&data)
	if err != nil {
		return nil, fmt.Errorf("translog: entry %d: %w", idx, db.NotFound(err, "entry %d is not in the log", idx))
	}
	return []byte(data), nil
}

// Inclusion proves that the entry at idx is in the tree of size size.
func (l *Log) Inclusion(ctx context.Context, idx, size int64) (tlog.RecordProof, error) {
	if idx < 0 || idx >= size {
		return nil, errs.E(errs.NotFound, "entry %d is not in a log of size %d", idx, size)
	}
	p, err := tlog.ProveRecord(size, idx, dbHashes{ctx, l})
	if err != nil {
		return nil, fmt.Errorf("translog: prove entry %d in %d: %w", idx, size, err)
	}
	return p, nil
}

// Consistency proves that the tree of size old is a prefix of the tree of
// size size.
func (l *Log) Consistency(ctx context.Context, old, size int64) (tlog.TreeProof, error) {
	if old < 0 || old > size {
		return nil, errs.E(errs.Invalid, "no consistency proof from size %d to %d", old, size)
	}
	if old == 0 || old == size {
		return nil, nil
	}
	p, err := tlog.ProveTree(size, old, dbHashes{ctx, l})
	if err != nil {
		return nil, fmt.Errorf("translog: prove %d consistent with %d: %w", old, size, err)
	}
	return p, nil
}

// ProofBundle is a C2SP tlog-proof of the entry at idx against the newest
// checkpoint (with its cosignatures); its extra data is the entry itself,
// so the bundle can be checked offline on its own.
func (l *Log) ProofBundle(ctx context.Context, idx int64) ([]byte, error) {
	cp, size, err := l.Checkpoint(ctx)
	if err != nil {
		return nil, err
	}
	p, err := l.Inclusion(ctx, idx, size)
	if err != nil {
		return nil, err
	}
	entry, err := l.Entry(ctx, idx)
	if err != nil {
		return nil, err
	}
	tp := proof.TLogProof{Index: uint64(idx), Checkpoint: cp, ExtraData: entry}
	for _, h := range p {
		tp.Hashes = append(tp.Hashes, [sha256.Size]byte(h))
	}
	return tp.Marshal(), nil
}

// Listed is one entry as a page lists it.
type Listed struct {
	Index int64  `json:"index"`
	Type  string `json:"type"`
	At    string `json:"at"`
}

// EntriesAbout lists the entries about subject (a product, deposit or
// release id), oldest first. Sealed entries name no subject and never
// appear here.
func (l *Log) EntriesAbout(ctx context.Context, subject string) ([]Listed, error) {
	rows, err := l.db.QueryContext(ctx, l.db.Q(`SELECT idx, kind, at FROM translog_entries WHERE subject = ? ORDER BY idx`), subject)
	if err != nil {
		return nil, fmt.Errorf("translog: entries of %s: %w", subject, db.Classify(err))
	}
	defer rows.Close()
	out := []Listed{}
	for rows.Next() {
		var e Listed
		var at int64
		if err := rows.Scan(&e.Index, &e.Type, &at); err != nil {
			return nil, err
		}
		e.At = db.FromMillis(at).Format("2006-01-02T15:04:05.000Z07:00")
		out = append(out, e)
	}
	return out, db.Classify(rows.Err())
}

// EntryIndexes maps seqs of the source's events to the indexes of their
// entries; an event not logged (yet, or never: passed over) is absent.
func (l *Log) EntryIndexes(ctx context.Context, source string, seqs []int64) (map[int64]int64, error) {
	out := map[int64]int64{}
	for len(seqs) > 0 {
		chunk := seqs[:min(len(seqs), 500)]
		seqs = seqs[len(chunk):]
		args := []any{source}
		for _, s := range chunk {
			args = append(args, s)
		}
		in := strings.TrimSuffix(strings.Repeat("?, ", len(chunk)), ", ")
		rows, err := l.db.QueryContext(ctx, l.db.Q(`SELECT source_seq, idx FROM translog_entries WHERE source = ? AND source_seq IN (`+in+`)`), args...)
		if err != nil {
			return nil, fmt.Errorf("translog: entries of %s: %w", source, db.Classify(err))
		}
		for rows.Next() {
			var seq, idx int64
			if err := rows.Scan(&seq, &idx); err != nil {
				rows.Close()
				return nil, err
			}
			out[seq] = idx
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, db.Classify(err)
		}
	}
	return out, nil
}

// OpenedBy maps released subjects (deposits) to the index of the entry
// that opened their commitment; a subject still sealed is absent.
func (l *Log) OpenedBy(ctx context.Context, subjects []string) (map[string]int64, error) {
	out := map[string]int64{}
	for _, s := range subjects {
		var idx int64
		err := l.db.QueryRowContext(ctx, l.db.Q(`SELECT opened FROM translog_commitments WHERE subject = ?`), s).Scan(&idx)
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("translog: release entry of %s: %w", s, db.Classify(err))
		}
		if idx >= 0 {
			out[s] = idx
		}
	}
	return out, nil
}
