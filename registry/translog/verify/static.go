package verify

import (
	"context"
	"fmt"

	"github.com/transparency-dev/tessera/api/layout"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/afterlife-oss/afterlife/internal/errs"
)

// A static log is the log as C2SP tlog-tiles publishes it: a checkpoint,
// tiles of height 8 and entry bundles at fixed paths, which any web server
// (a mirror) serves without the log's API. From them a client computes
// what the API would answer (an inclusion proof, a consistency proof) with
// golang.org/x/mod/sumdb/tlog: TileHashReader checks every tile it reads
// against the checkpoint's tree, so a changed tile is an error, never a
// wrong proof.

// Fetch reads a file of a static log by its path under the log's root
// ("checkpoint", "tile/0/000", "tile/entries/000.p/5"). A missing file is
// errs.NotFound.
type Fetch func(ctx context.Context, path string) ([]byte, error)

// tileHeight is the height of C2SP tlog-tiles.
const tileHeight = 8

// StaticCheckpoint reads the static log's checkpoint and checks it against
// the policy.
func (p Policy) StaticCheckpoint(ctx context.Context, fetch Fetch) (Checkpoint, error) {
	b, err := fetch(ctx, "checkpoint")
	if err != nil {
		return Checkpoint{}, err
	}
	return p.Checkpoint(b)
}

// StaticBundle proves entry idx from a static log: its checkpoint checked
// against the policy, the entry read from its entry bundle, and its
// inclusion proved from the tiles. It is the Bundle the log's API would
// have served, checked the same way. An entry beyond the checkpoint is
// errs.NotFound (not logged, or not witnessed yet).
func (p Policy) StaticBundle(ctx context.Context, fetch Fetch, idx int64) (Bundle, error) {
	cp, err := p.StaticCheckpoint(ctx, fetch)
	if err != nil {
		return Bundle{}, err
	}
	if idx < 0 || idx >= cp.Size {
		return Bundle{}, errs.E(errs.NotFound, "entry %d is beyond the static log's checkpoint of size %d", idx, cp.Size)
	}
	entry, err := staticEntry(ctx, fetch, cp.Size, idx)
	if err != nil {
		return Bundle{}, err
	}
	hr := tlog.TileHashReader(tlog.Tree{N: cp.Size, Hash: cp.Hash}, &tileReader{ctx: ctx, fetch: fetch})
	proof, err := tlog.ProveRecord(cp.Size, idx, hr)
	if err != nil {
		return Bundle{}, errs.Wrap(errs.Invalid, err, "the static log's tiles do not prove entry %d in the checkpoint of size %d", idx, cp.Size)
	}
	if err := Inclusion(cp, idx, entry, proof); err != nil {
		return Bundle{}, err
	}
	return Bundle{Index: idx, Entry: entry, Checkpoint: cp}, nil
}

// StaticConsistency proves from a static log whose checkpoint is cur that
// old's tree is a prefix of cur's, and checks it (Consistency). The tiles
// are those of cur's tree, so old must not be the larger.
func StaticConsistency(ctx context.Context, fetch Fetch, old, cur Checkpoint) error {
	if old.Size > cur.Size {
		return errs.E(errs.Invalid, "the static log's checkpoint of size %d is older than the one of size %d: its tiles cannot prove the newer", cur.Size, old.Size)
	}
	var proof tlog.TreeProof
	if old.Size > 0 && old.Size < cur.Size {
		hr := tlog.TileHashReader(tlog.Tree{N: cur.Size, Hash: cur.Hash}, &tileReader{ctx: ctx, fetch: fetch})
		var err error
		if proof, err = tlog.ProveTree(cur.Size, old.Size, hr); err != nil {
			return errs.Wrap(errs.Invalid, err, "the static log's tiles do not prove size %d a prefix of size %d", old.Size, cur.Size)
		}
	}
	return Consistency(old, cur, proof)
}

// staticEntry reads entry idx of a tree of size n from its entry bundle:
// each entry a big-endian uint16 length and its bytes.
func staticEntry(ctx context.Context, fetch Fetch, n, idx int64) ([]byte, error) {
	bundle := uint64(idx) / 256
	var partial uint8
	if bundle == uint64(n)/256 {
		partial = uint8(n % 256)
	}
	name := layout.EntriesPath(bundle, partial)
	b, err := fetch(ctx, name)
	if err != nil {
		return nil, err
	}
	for i := int64(bundle) * 256; len(b) > 0; i++ {
		if len(b) < 2 || len(b) < 2+(int(b[0])<<8|int(b[1])) {
			return nil, errs.E(errs.Invalid, "the static log's entry bundle %s is truncated", name)
		}
		l := int(b[0])<<8 | int(b[1])
		if i == idx {
			return b[2 : 2+l], nil
		}
		b = b[2+l:]
	}
	return nil, errs.E(errs.Invalid, "the static log's entry bundle %s does not hold entry %d", name, idx)
}

// tileReader reads C2SP tiles for tlog.TileHashReader, which checks them.
type tileReader struct {
	ctx   context.Context
	fetch Fetch
}

func (r *tileReader) Height() int { return tileHeight }

func (r *tileReader) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		if t.H != tileHeight || t.L < 0 || t.W < 1 || t.W > 256 {
			return nil, fmt.Errorf("tile %v is not a C2SP tile", t)
		}
		b, err := r.fetch(r.ctx, layout.TilePath(uint64(t.L), uint64(t.N), uint8(t.W%256)))
		if err != nil {
			return nil, err
		}
		out[i] = b
	}
	return out, nil
}

func (r *tileReader) SaveTiles([]tlog.Tile, [][]byte) {}
