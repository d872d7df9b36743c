package tufdb_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/dbtest"
	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/testenv"
	"github.com/afterlife-oss/afterlife/registry/tuf"
	"github.com/afterlife-oss/afterlife/registry/tufdb"
)

func TestMain(m *testing.M) { testenv.Main(m) }

var _ tuf.Store = (*tufdb.Store)(nil)

func TestStore(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		s, err := tufdb.New(ctx, d, time.Now)
		if err != nil {
			t.Fatal(err)
		}
		t.Run("a repository opens, publishes and reopens on the database", func(t *testing.T) {
			keys := t.TempDir()
			repo, err := tuf.Open(ctx, s, keys, time.Now)
			if err != nil {
				t.Fatal(err)
			}
			sum := "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
			if err := repo.Apply(ctx, []tuf.Target{{Path: "p/1.0/fw.bin", Length: 0, SHA256: sum}}, nil); err != nil {
				t.Fatal(err)
			}
			if _, err := tuf.Open(ctx, s, keys, time.Now); err != nil {
				t.Fatalf("reopen: %v", err)
			}
		})
		t.Run("a missing file is NotFound", func(t *testing.T) {
			if _, err := s.GetMeta(ctx, "99.snapshot.json"); !errs.Is(err, errs.NotFound) {
				t.Fatalf("got %v, want NotFound", err)
			}
		})
		t.Run("a file replaced in place reads back its newest bytes", func(t *testing.T) {
			for _, data := range []string{`{"v":1}`, `{"v":2}`} {
				if err := s.PutMeta(ctx, "timestamp.json", []byte(data)); err != nil {
					t.Fatal(err)
				}
				got, err := s.GetMeta(ctx, "timestamp.json")
				if err != nil || string(got) != data {
					t.Fatalf("got %q %v, want %q", got, err, data)
				}
			}
		})
		t.Run("a versioned file is served from another replica's store too", func(t *testing.T) {
			other, err := tufdb.New(ctx, d, time.Now)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.PutMeta(ctx, "3.bins-2a.json", []byte(`{"bin":true}`)); err != nil {
				t.Fatal(err)
			}
			for range 2 {
				got, err := other.GetMeta(ctx, "3.bins-2a.json")
				if err != nil || !bytes.Equal(got, []byte(`{"bin":true}`)) {
					t.Fatalf("got %q %v", got, err)
				}
			}
		})
	})
}
