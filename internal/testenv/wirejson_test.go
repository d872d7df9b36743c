package testenv

import (
	"fmt"
	"testing"
)

// errorRecorder is a testing.TB that keeps what Errorf says.
type errorRecorder struct {
	testing.TB
	errors []string
}

func (r *errorRecorder) Helper() {}

func (r *errorRecorder) Errorf(format string, args ...any) {
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}

func TestSameJSONCatchesAViewThatDrifted(t *testing.T) {
	type server struct {
		ID    string `json:"id"`
		Notes string `json:"notes,omitempty"`
		Count int    `json:"count"`
	}
	type full struct {
		ID    string `json:"id"`
		Notes string `json:"notes,omitempty"`
		Count int    `json:"count"`
	}
	type part struct {
		ID string `json:"id"`
	}
	type required struct {
		ID    string `json:"id"`
		Count int    `json:"count"`
	}
	type renamed struct {
		ID string `json:"ident"`
	}
	type retyped struct {
		Count string `json:"count"`
	}
	type optionLost struct {
		Notes string `json:"notes"`
	}
	for _, c := range []struct {
		name  string
		view  any
		whole bool
		fails bool
	}{
		{"a view with every field passes as a whole", full{}, true, false},
		{"a view with some fields passes as a part", part{}, false, false},
		{"a view missing a field fails as a whole", part{}, true, true},
		{"a view missing only an optional field passes as a whole", required{}, true, false},
		{"a renamed field fails", renamed{}, false, true},
		{"a field of another kind fails", retyped{}, false, true},
		{"a field that lost omitempty fails", optionLost{}, false, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := &errorRecorder{TB: t}
			SameJSON(r, c.view, server{}, c.whole)
			if failed := len(r.errors) > 0; failed != c.fails {
				t.Fatalf("failed %v (%q), want %v", failed, r.errors, c.fails)
			}
		})
	}
}
