package ids

import (
	"strings"
	"testing"
)

func TestNewIsUniqueAndPrefixed(t *testing.T) {
	seen := map[string]bool{}
	prev := ""
	for i := 0; i < 10000; i++ {
		id := New("dep")
		if !strings.HasPrefix(id, "dep_") || len(id) != len("dep_")+26 {
			t.Fatalf("id %q has the wrong shape", id)
		}
		if seen[id] {
			t.Fatalf("id %q repeated", id)
		}
		seen[id] = true
		if id[:13] < prev[:min(13, len(prev))] { // 4 prefix + 9 characters of pure time
			t.Fatalf("id %q sorts before the earlier %q", id, prev)
		}
		prev = id
	}
}
