package tuf

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// countingStore records the names written through it.
type countingStore struct {
	Store
	mu   sync.Mutex
	puts []string
}

func (c *countingStore) PutMeta(ctx context.Context, name string, data []byte) error {
	c.mu.Lock()
	c.puts = append(c.puts, name)
	c.mu.Unlock()
	return c.Store.PutMeta(ctx, name, data)
}

func (c *countingStore) reset() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.puts
	c.puts = nil
	return p
}

// manyTargets builds n targets in memory, named like real releases.
func manyTargets(from, n int) []Target {
	ts := make([]Target, n)
	for i := range ts {
		p := fmt.Sprintf("product-%05d/1.%d.0/firmware.bin", (from+i)/4, (from+i)%4)
		sum := sha256.Sum256([]byte(p))
		ts[i] = Target{Path: p, Length: int64(1000 + i), SHA256: hex.EncodeToString(sum[:])}
	}
	return ts
}

func TestOneHundredThousandTargetsKeepEveryFileSmall(t *testing.T) {
	// The race detector makes go-tuf's JSON ten times slower; it checks
	// the same code paths on a fifth of the targets.
	total := scaleTargets
	batch := total
	store := &countingStore{Store: NewMemStore()}
	f := newFixture(t, store)
	for from := 0; from < total; from += batch {
		if err := f.repo.Apply(f.ctx, manyTargets(from, batch), nil); err != nil {
			t.Fatal(err)
		}
	}
	st, err := f.repo.load(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	maxBin, count := 0, 0
	for name, mf := range st.snapshot.Signed.Meta {
		if !strings.HasPrefix(name, BinPrefix+"-") {
			continue
		}
		data := f.meta(fmt.Sprintf("%d.%s", mf.Version, name))
		maxBin = max(maxBin, len(data))
		var bin struct {
			Signed struct {
				Targets map[string]json.RawMessage `json:"targets"`
			} `json:"signed"`
		}
		if err := json.Unmarshal(data, &bin); err != nil {
			t.Fatal(err)
		}
		count += len(bin.Signed.Targets)
	}
	snap := f.meta(fmt.Sprintf("%d.snapshot.json", st.snapshot.Signed.Version))
	targets := f.meta(fmt.Sprintf("%d.targets.json", st.targets.Signed.Version))
	t.Logf("%d targets: largest bin %d bytes, snapshot %d bytes, targets %d bytes", total, maxBin, len(snap), len(targets))
	if count != total {
		t.Fatalf("bins list %d targets, want %d", count, total)
	}
	if maxBin > 80<<10 {
		t.Errorf("largest bin is %d bytes, want at most 80 KiB", maxBin)
	}
	if len(snap) > 16<<10 || len(targets) > 2<<10 {
		t.Errorf("snapshot %d bytes, targets %d bytes: top-level metadata grows with the targets", len(snap), len(targets))
	}

	store.reset()
	one := f.publish("demo-cam/9.9.9/afterlife-cam.tar.gz", "new firmware")
	puts := store.reset()
	if len(puts) != 3 || !strings.Contains(puts[0], ".bins-") || !strings.HasSuffix(puts[1], ".snapshot.json") || puts[2] != "timestamp.json" {
		t.Fatalf("publishing one target wrote %v, want one bin, the snapshot and the timestamp", puts)
	}
	up := f.client(f.meta("1.root.json"), t.TempDir())
	for _, p := range []string{one.Path, manyTargets(total-3, 1)[0].Path} {
		if _, err := up.GetTargetInfo(p); err != nil {
			t.Fatalf("GetTargetInfo %s: %v", p, err)
		}
	}
}

func BenchmarkApplyOneInto100k(b *testing.B) {
	for _, bc := range []struct {
		name  string
		store func(b *testing.B) Store
	}{
		{"in-memory store", func(*testing.B) Store { return NewMemStore() }},
		{"directory store", func(b *testing.B) Store {
			s, err := NewDirStore(filepath.Join(b.TempDir(), "meta"))
			if err != nil {
				b.Fatal(err)
			}
			return s
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ctx := context.Background()
			repo, err := Open(ctx, bc.store(b), filepath.Join(b.TempDir(), "keys"), time.Now)
			if err != nil {
				b.Fatal(err)
			}
			if err := repo.Apply(ctx, manyTargets(0, 100_000), nil); err != nil {
				b.Fatal(err)
			}
			extra := manyTargets(100_000, b.N)
			b.ResetTimer()
			for i := range b.N {
				if err := repo.Apply(ctx, extra[i:i+1], nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
