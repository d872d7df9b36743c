package verify_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"

	"github.com/transparency-dev/tessera/api/layout"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/registry/translog/verify"
)

// staticLog is a log of n entries published as C2SP tiles in memory, the
// way a mirror serves it.
type staticLog struct {
	files  map[string][]byte
	size   int64
	policy verify.Policy
	cp     verify.Checkpoint
}

func newStaticLog(t testing.TB, n int64, entry func(i int64) string) *staticLog {
	t.Helper()
	const origin = "example.test/log"
	skey, vkey, err := note.GenerateKey(rand.Reader, origin)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	var stored []tlog.Hash
	hr := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			out[i] = stored[x]
		}
		return out, nil
	})
	l := &staticLog{files: map[string][]byte{}, size: n, policy: verify.Policy{Origin: origin, LogKey: vkey}}
	var bundle []byte
	for i := int64(0); i < n; i++ {
		e := []byte(entry(i))
		hs, err := tlog.StoredHashes(i, e, hr)
		if err != nil {
			t.Fatal(err)
		}
		stored = append(stored, hs...)
		bundle = append(bundle, byte(len(e)>>8), byte(len(e)))
		bundle = append(bundle, e...)
		if (i+1)%256 == 0 || i == n-1 {
			var partial uint8
			if (i+1)%256 != 0 {
				partial = uint8((i + 1) % 256)
			}
			l.files[layout.EntriesPath(uint64(i/256), partial)] = bundle
			bundle = nil
		}
	}
	for _, tile := range tlog.NewTiles(8, 0, n) {
		data, err := tlog.ReadTileData(tile, hr)
		if err != nil {
			t.Fatal(err)
		}
		l.files[layout.TilePath(uint64(tile.L), uint64(tile.N), uint8(tile.W%256))] = data
	}
	th, err := tlog.TreeHash(n, hr)
	if err != nil {
		t.Fatal(err)
	}
	body := fmt.Sprintf("%s\n%d\n%s\n", origin, n, base64.StdEncoding.EncodeToString(th[:]))
	signed, err := note.Sign(&note.Note{Text: body}, signer)
	if err != nil {
		t.Fatal(err)
	}
	l.files["checkpoint"] = signed
	if l.cp, err = l.policy.Checkpoint(signed); err != nil {
		t.Fatal(err)
	}
	return l
}

func (l *staticLog) fetch(_ context.Context, name string) ([]byte, error) {
	b, ok := l.files[name]
	if !ok {
		return nil, errs.E(errs.NotFound, "%s: 404", name)
	}
	return append([]byte(nil), b...), nil
}

func entryText(i int64) string { return fmt.Sprintf(`{"index":%d,"type":"release.published"}`, i) }

func TestAStaticLogProvesEntriesAndConsistencyFromItsTilesAlone(t *testing.T) {
	ctx := context.Background()
	const n = 600 // two full entry bundles and tiles, and partial ones
	l := newStaticLog(t, n, entryText)

	t.Run("every entry is proved from the tiles and its bundle", func(t *testing.T) {
		for _, i := range []int64{0, 1, 255, 256, 511, 512, 599} {
			b, err := l.policy.StaticBundle(ctx, l.fetch, i)
			if err != nil {
				t.Fatalf("entry %d: %v", i, err)
			}
			if b.Index != i || string(b.Entry) != entryText(i) || b.Checkpoint.Size != n {
				t.Fatalf("entry %d: got index %d, entry %q, size %d", i, b.Index, b.Entry, b.Checkpoint.Size)
			}
		}
	})
	t.Run("an entry beyond the checkpoint is not found", func(t *testing.T) {
		if _, err := l.policy.StaticBundle(ctx, l.fetch, n); !errs.Is(err, errs.NotFound) {
			t.Fatalf("entry %d of a log of %d: %v, want NotFound", n, n, err)
		}
	})
	for _, tc := range []struct{ name, file string }{
		{"a changed byte in a level-0 tile is refused", layout.TilePath(0, 0, 0)},
		{"a changed byte in the partial level-1 tile is refused", layout.TilePath(1, 0, 2)},
		{"a changed byte in an entry bundle is refused", layout.EntriesPath(0, 0)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			orig := l.files[tc.file]
			if orig == nil {
				t.Fatalf("no file %s", tc.file)
			}
			bad := append([]byte(nil), orig...)
			at := len(bad) - 3
			if i := bytes.Index(bad, []byte(entryText(3))); i >= 0 {
				at = i + 3 // inside entry 3 itself
			}
			bad[at] ^= 0x01
			l.files[tc.file] = bad
			defer func() { l.files[tc.file] = orig }()
			if _, err := l.policy.StaticBundle(ctx, l.fetch, 3); err == nil {
				t.Fatalf("entry 3 proved with %s changed", tc.file)
			}
		})
	}
	t.Run("a checkpoint the policy does not accept is refused", func(t *testing.T) {
		p := l.policy
		p.Quorum = 1
		if _, err := p.StaticBundle(ctx, l.fetch, 3); err == nil || !strings.Contains(err.Error(), "distinct operators") {
			t.Fatalf("a checkpoint without cosignatures under a quorum of 1: %v", err)
		}
	})
	t.Run("an earlier checkpoint of the same log is proved a prefix", func(t *testing.T) {
		old := newStaticLog(t, 300, entryText).cp
		old.Origin = l.cp.Origin
		if err := verify.StaticConsistency(ctx, l.fetch, old, l.cp); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("a checkpoint of another history is not", func(t *testing.T) {
		other := newStaticLog(t, 300, func(i int64) string { return entryText(i) + " rewritten" }).cp
		if err := verify.StaticConsistency(ctx, l.fetch, other, l.cp); err == nil {
			t.Fatal("a rewritten history was proved a prefix")
		}
	})
	t.Run("a checkpoint newer than the static log cannot be proved from it", func(t *testing.T) {
		newer := newStaticLog(t, 700, entryText).cp
		if err := verify.StaticConsistency(ctx, l.fetch, newer, l.cp); err == nil || !strings.Contains(err.Error(), "older") {
			t.Fatalf("consistency with a newer checkpoint: %v", err)
		}
	})
}

// FuzzStaticBundleReadsAnyEntryBundle hands the static reader any bytes as
// an entry bundle: it never panics, and it never proves an entry the log
// does not hold.
func FuzzStaticBundleReadsAnyEntryBundle(f *testing.F) {
	l := newStaticLog(f, 5, entryText)
	name := layout.EntriesPath(0, 5)
	f.Add(l.files[name])
	f.Add([]byte{0, 3, 'a', 'b'})
	f.Add([]byte{0xff, 0xff})
	f.Fuzz(func(t *testing.T, bundle []byte) {
		files := map[string][]byte{}
		for k, v := range l.files {
			files[k] = v
		}
		files[name] = bundle
		fetch := func(_ context.Context, p string) ([]byte, error) {
			b, ok := files[p]
			if !ok {
				return nil, errs.E(errs.NotFound, "%s", p)
			}
			return b, nil
		}
		for i := int64(0); i < 5; i++ {
			b, err := l.policy.StaticBundle(context.Background(), fetch, i)
			if err == nil && string(b.Entry) != entryText(i) {
				t.Fatalf("entry %d proved as %q", i, b.Entry)
			}
		}
	})
}

func TestAPolicyTellsACheckpointOfAnotherLogFromItsOwn(t *testing.T) {
	a, b := newStaticLog(t, 3, entryText), newStaticLog(t, 3, entryText)
	if a.policy.OtherLog(a.files["checkpoint"]) {
		t.Error("a checkpoint of the policy's own log counts as another log's")
	}
	if !a.policy.OtherLog(b.files["checkpoint"]) {
		t.Error("a checkpoint signed by another log's key counts as the policy's log's")
	}
	forged := append([]byte(nil), a.files["checkpoint"]...)
	forged[len(forged)-5] ^= 0x01 // a bad signature by the policy's own key
	if a.policy.OtherLog(forged) {
		t.Error("a checkpoint with a bad signature of the policy's key counts as another log's")
	}
}
