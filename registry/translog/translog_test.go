package translog

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/dbtest"
	"github.com/afterlife-oss/afterlife/internal/testenv"
	"github.com/afterlife-oss/afterlife/registry/translog/verify"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// memSource is a part's append-only log held in memory: the log under
// test reads it the way it reads the parts' tables.
type memSource struct {
	mu  sync.Mutex
	evs []Event
}

func (s *memSource) add(at time.Time, typ, subject string, fields map[string]any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.evs = append(s.evs, Event{Seq: int64(len(s.evs) + 1), At: at, Type: typ, Subject: subject, Fields: fields})
}

func (s *memSource) addEvent(ev Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ev.Seq = int64(len(s.evs) + 1)
	s.evs = append(s.evs, ev)
}

func (s *memSource) After(_ context.Context, seq int64, limit int) ([]Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Event
	for _, e := range s.evs {
		if e.Seq > seq && len(out) < limit {
			out = append(out, e)
		}
	}
	return out, nil
}

var t0 = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

func openLog(t *testing.T, d *db.DB, keys, replica string, sources map[string]Source) *Log {
	t.Helper()
	l, err := Open(context.Background(), Options{DB: d, KeyDir: keys, Origin: "afterlife.test/log", Sources: sources,
		Now: func() time.Time { return t0 }, Logger: testenv.Logger(t), Replica: replica, Batch: 7})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func policyOf(l *Log) verify.Policy {
	return verify.Policy{Origin: l.Origin(), LogKey: l.VerifierKey()}
}

// entries reads every entry of the log through its entry bundles.
func entries(t *testing.T, l *Log, size int64) [][]byte {
	t.Helper()
	var out [][]byte
	for i := int64(0); i < size; i += 256 {
		w := uint8(0)
		if size-i < 256 {
			w = uint8(size - i)
		}
		b, err := l.EntryBundle(context.Background(), uint64(i/256), w)
		if err != nil {
			t.Fatal(err)
		}
		for len(b) > 0 {
			n := int(b[0])<<8 | int(b[1])
			out = append(out, b[2:2+n])
			b = b[2+n:]
		}
	}
	return out
}

func TestTheLogRecordsEveryEventOnceInOrder(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		cat, reg := &memSource{}, &memSource{}
		// Interleaved in time across two sources, more than a batch each:
		// the backfill merges them by time.
		for i := 0; i < 20; i++ {
			cat.add(t0.Add(time.Duration(2*i)*time.Second), "product.status", "p1", map[string]any{"n": 2 * i})
			reg.add(t0.Add(time.Duration(2*i+1)*time.Second), "release.published", "p1", map[string]any{"n": 2*i + 1})
		}
		keys := t.TempDir()
		sources := map[string]Source{"catalog": cat, "registry": reg}
		a := openLog(t, d, keys, "a", sources)
		b := openLog(t, d, keys, "b", sources)

		t.Run("the first writer backfills the history in time order", func(t *testing.T) {
			res, err := a.Tick(ctx, t0, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			if !res.Leader || res.Appended != 40 || res.Size != 40 {
				t.Fatalf("tick: %+v, want leader, 40 appended", res)
			}
			for i, e := range entries(t, a, 40) {
				var m map[string]any
				if err := json.Unmarshal(e, &m); err != nil {
					t.Fatal(err)
				}
				if m["n"] != float64(i) {
					t.Fatalf("entry %d is event %v: %s", i, m["n"], e)
				}
			}
		})
		t.Run("a source whose times do not rise with its seq is logged in seq order", func(t *testing.T) {
			// Two replicas' clocks: seq 41 carries an earlier time than
			// seq 40 did.
			cat.add(t0.Add(30*time.Minute), "product.status", "p1", map[string]any{"n": 40})
			cat.add(t0.Add(29*time.Minute), "product.status", "p1", map[string]any{"n": 41})
			res, err := a.Tick(ctx, t0, time.Minute)
			if err != nil || res.Appended != 2 {
				t.Fatalf("tick: %+v, %v; want 2 appended", res, err)
			}
			es := entries(t, a, res.Size)
			if !strings.Contains(string(es[40]), `"n":40`) || !strings.Contains(string(es[41]), `"n":41`) {
				t.Fatalf("entries 40, 41: %s, %s", es[40], es[41])
			}
		})
		t.Run("a replica without the lease appends nothing", func(t *testing.T) {
			cat.add(t0.Add(time.Hour), "product.status", "p1", map[string]any{"n": 42})
			res, err := b.Tick(ctx, t0, time.Minute)
			if err != nil || res.Leader || res.Appended != 0 {
				t.Fatalf("tick of b: %+v, %v; want no lease and nothing appended", res, err)
			}
		})
		t.Run("writers that overlap never log an event twice", func(t *testing.T) {
			for i := 0; i < 30; i++ {
				reg.add(t0.Add(2*time.Hour+time.Duration(i)*time.Second), "release.promoted", "p1", map[string]any{"n": 43 + i})
			}
			// Both act as if they held the lease (one's lease ran out
			// while it was still appending).
			var wg sync.WaitGroup
			for _, l := range []*Log{a, b} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range 5 {
						batch, err := l.pendingBatch(ctx)
						if err != nil {
							t.Error(err)
							return
						}
						// The one that lost the race fails on the unique
						// index and appends nothing.
						if _, _, err := l.appendBatch(ctx, batch, t0); err != nil && !db.IsUniqueViolation(err) {
							t.Error(err)
						}
					}
				}()
			}
			wg.Wait()
			if _, err := a.Tick(ctx, t0.Add(time.Hour), time.Minute); err != nil {
				t.Fatal(err)
			}
			size, err := a.Size(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if size != 73 {
				t.Fatalf("size %d, want 73 (every event once)", size)
			}
			seen := map[float64]bool{}
			for _, e := range entries(t, a, size) {
				var m map[string]any
				_ = json.Unmarshal(e, &m)
				if seen[m["n"].(float64)] {
					t.Fatalf("event %v logged twice", m["n"])
				}
				seen[m["n"].(float64)] = true
			}
		})
		t.Run("every checkpoint extends the one before it", func(t *testing.T) {
			cp, size, err := a.Checkpoint(ctx)
			if err != nil {
				t.Fatal(err)
			}
			newest, err := policyOf(a).Checkpoint(cp)
			if err != nil {
				t.Fatal(err)
			}
			rows, err := d.QueryContext(ctx, `SELECT size, note FROM translog_checkpoints ORDER BY size`)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			n := 0
			for rows.Next() {
				var s int64
				var note string
				if err := rows.Scan(&s, &note); err != nil {
					t.Fatal(err)
				}
				old, err := policyOf(a).Checkpoint([]byte(note))
				if err != nil {
					t.Fatal(err)
				}
				p, err := a.Consistency(ctx, s, size)
				if err != nil {
					t.Fatal(err)
				}
				if err := verify.Consistency(old, newest, p); err != nil {
					t.Errorf("checkpoint %d: %v", s, err)
				}
				n++
			}
			if n < 2 {
				t.Fatalf("%d checkpoints, want several", n)
			}
		})
		t.Run("every entry's proof bundle verifies offline", func(t *testing.T) {
			size, _ := a.Size(ctx)
			for i := int64(0); i < size; i++ {
				bundle, err := a.ProofBundle(ctx, i)
				if err != nil {
					t.Fatal(err)
				}
				got, err := policyOf(a).Bundle(bundle)
				if err != nil {
					t.Fatalf("entry %d: %v", i, err)
				}
				want, _ := a.Entry(ctx, i)
				if string(got.Entry) != string(want) {
					t.Fatalf("entry %d: bundle carries %s, want %s", i, got.Entry, want)
				}
			}
		})
		t.Run("a key made beforehand names a new log", func(t *testing.T) {
			keys := t.TempDir()
			skey, _, err := note.GenerateKey(rand.Reader, "registry.example.org/log")
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(keys, KeyFile), []byte(skey+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			l, err := Open(ctx, Options{DB: dbtest.SQLite(t), KeyDir: keys, Origin: "127.0.0.1:8080/log", Logger: testenv.Logger(t)})
			if err != nil {
				t.Fatal(err)
			}
			if l.Origin() != "registry.example.org/log" {
				t.Fatalf("origin %q; want the key's name", l.Origin())
			}
		})
		t.Run("a replica with another key refuses to start", func(t *testing.T) {
			_, err := Open(ctx, Options{DB: d, KeyDir: t.TempDir(), Origin: "afterlife.test/log", Logger: testenv.Logger(t)})
			if err == nil {
				t.Fatal("a replica without the log's key opened the log")
			}
		})
	})
}

func TestASealedEntryRevealsNothingUntilItsReleaseOpensIt(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		src := &memSource{}
		l := openLog(t, d, t.TempDir(), "a", map[string]Source{"escrow": src})
		src.addEvent(Event{At: t0, Type: "deposit.sealed", Subject: "dep-secret",
			Seal: &Commitment{Product: "acme-cam", Manifest: "sha256:feedface"}})
		if _, err := l.Tick(ctx, t0, time.Minute); err != nil {
			t.Fatal(err)
		}
		sealed, err := l.Entry(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(sealed, &m); err != nil {
			t.Fatal(err)
		}
		if len(m) != 3 || m["type"] != "deposit.sealed" || m["at"] == nil || !strings.HasPrefix(fmt.Sprint(m["commitment"]), "sha256:") {
			t.Fatalf("sealed entry %s: want type, at and commitment only", sealed)
		}
		for _, secret := range []string{"dep-secret", "acme-cam", "feedface"} {
			if strings.Contains(string(sealed), secret) {
				t.Fatalf("sealed entry %s shows %s", sealed, secret)
			}
		}
		if list, _ := l.EntriesAbout(ctx, "dep-secret"); len(list) != 0 {
			t.Fatalf("the sealed deposit is listed: %v", list)
		}

		src.addEvent(Event{At: t0.Add(time.Hour), Type: "deposit.released", Subject: "acme-cam", Opens: "dep-secret",
			Fields: map[string]any{"deposit": "dep-secret", "product": "acme-cam", "manifest": "sha256:feedface", "fired": "immediate"}})
		if _, err := l.Tick(ctx, t0.Add(time.Hour), time.Minute); err != nil {
			t.Fatal(err)
		}
		released, err := l.Entry(ctx, 1)
		if err != nil {
			t.Fatal(err)
		}
		var r map[string]any
		if err := json.Unmarshal(released, &r); err != nil {
			t.Fatal(err)
		}
		salt, _ := r["salt"].(string)
		if len(salt) != 64 || r["sealed_entry"] != float64(0) || r["commitment"] != m["commitment"] {
			t.Fatalf("release entry %s does not open entry 0's commitment", released)
		}
		if got := verify.Commitment(salt, "acme-cam", "sha256:feedface"); got != m["commitment"] {
			t.Fatalf("the revealed salt gives %s, the sealed entry says %s", got, m["commitment"])
		}
		if got := verify.Commitment(salt, "acme-cam", "sha256:other"); got == m["commitment"] {
			t.Fatal("another manifest matches the commitment")
		}
		if opened, err := l.OpenedBy(ctx, []string{"dep-secret", "dep-unknown"}); err != nil || len(opened) != 1 || opened["dep-secret"] != 1 {
			t.Fatalf("opened by: %v %v; want dep-secret opened by entry 1", opened, err)
		}
	})
}

func TestTilesAreTheTreeTheCheckpointSigns(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		src := &memSource{}
		for i := 0; i < 600; i++ {
			src.add(t0.Add(time.Duration(i)*time.Millisecond), "product.status", "p", map[string]any{"n": i})
		}
		l, err := Open(ctx, Options{DB: d, KeyDir: t.TempDir(), Origin: "afterlife.test/log", Sources: map[string]Source{"s": src},
			Now: func() time.Time { return t0 }, Logger: testenv.Logger(t), Replica: "a", Batch: 256})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.Tick(ctx, t0, time.Minute); err != nil {
			t.Fatal(err)
		}
		cp, size, err := l.Checkpoint(ctx)
		if err != nil {
			t.Fatal(err)
		}
		c, err := policyOf(l).Checkpoint(cp)
		if err != nil {
			t.Fatal(err)
		}
		// The root, from tiles only, as a client reading the C2SP tiles
		// computes it.
		tiles := tileReader{ctx, l}
		root, err := tlog.TreeHash(size, tlog.TileHashReader(tlog.Tree{N: size, Hash: c.Hash}, tiles))
		if err != nil {
			t.Fatal(err)
		}
		if root != c.Hash {
			t.Fatalf("root from tiles %s, checkpoint says %s", root, c.Hash)
		}
		for _, tc := range []struct {
			name          string
			level, index  uint64
			w             uint8
			wantAvailable bool
		}{
			{"a full level-0 tile is served", 0, 1, 0, true},
			{"the partial level-0 tile at the end is served", 0, 2, 88, true},
			{"a partial tile beyond the end is not", 0, 2, 89, false},
			{"a full tile beyond the end is not", 0, 2, 0, false},
			{"the partial level-1 tile is served", 1, 0, 2, true},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := l.Tile(ctx, tc.level, tc.index, tc.w)
				if (err == nil) != tc.wantAvailable {
					t.Fatalf("tile %d/%d.p/%d: %v", tc.level, tc.index, tc.w, err)
				}
			})
		}
	})
}

// tileReader reads tiles from the log as a client fetching them would.
type tileReader struct {
	ctx context.Context
	l   *Log
}

func (r tileReader) Height() int { return TileHeight }

func (r tileReader) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		w := uint8(0)
		if t.W < 256 {
			w = uint8(t.W)
		}
		b, err := r.l.Tile(r.ctx, uint64(t.L), uint64(t.N), w)
		if err != nil {
			return nil, err
		}
		out[i] = b
	}
	return out, nil
}

func (r tileReader) SaveTiles([]tlog.Tile, [][]byte) {}
