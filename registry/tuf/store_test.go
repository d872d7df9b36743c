package tuf

import (
	"context"
	"testing"

	"github.com/afterlife-oss/afterlife/internal/errs"
)

// runStoreSuite is the one conformance suite every Store passes.
func runStoreSuite(t *testing.T, newStore func(t *testing.T) Store) {
	ctx := context.Background()
	t.Run("a missing name is not found", func(t *testing.T) {
		if _, err := newStore(t).GetMeta(ctx, "1.root.json"); !errs.Is(err, errs.NotFound) {
			t.Fatalf("err = %v, want not_found", err)
		}
	})
	t.Run("a put is read back and replaced by the next put", func(t *testing.T) {
		s := newStore(t)
		for _, v := range []string{"one", "two"} {
			if err := s.PutMeta(ctx, "timestamp.json", []byte(v)); err != nil {
				t.Fatal(err)
			}
			got, err := s.GetMeta(ctx, "timestamp.json")
			if err != nil || string(got) != v {
				t.Fatalf("got %q %v, want %q", got, err, v)
			}
		}
	})
	t.Run("state names are kept apart", func(t *testing.T) {
		s := newStore(t)
		if err := s.PutMeta(ctx, "state/lock.json", []byte("x")); err != nil {
			t.Fatal(err)
		}
		if got, err := s.GetMeta(ctx, "state/lock.json"); err != nil || string(got) != "x" {
			t.Fatalf("got %q %v", got, err)
		}
	})
	t.Run("names that escape are refused", func(t *testing.T) {
		s := newStore(t)
		for _, n := range []string{"", "../x.json", "a/b.json", "/abs.json", `a\b.json`, "state/a/b.json"} {
			if err := s.PutMeta(ctx, n, []byte("x")); !errs.Is(err, errs.Invalid) {
				t.Errorf("PutMeta(%q): err = %v, want invalid", n, err)
			}
		}
	})
	t.Run("a caller cannot change stored bytes through its slice", func(t *testing.T) {
		s := newStore(t)
		b := []byte("abc")
		if err := s.PutMeta(ctx, "x.json", b); err != nil {
			t.Fatal(err)
		}
		b[0] = 'z'
		got, _ := s.GetMeta(ctx, "x.json")
		got[1] = 'z'
		if again, _ := s.GetMeta(ctx, "x.json"); string(again) != "abc" {
			t.Fatalf("stored bytes changed to %q", again)
		}
	})
}

func TestMemStore(t *testing.T) {
	runStoreSuite(t, func(*testing.T) Store { return NewMemStore() })
}

func TestDirStore(t *testing.T) {
	runStoreSuite(t, func(t *testing.T) Store {
		s, err := NewDirStore(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}
