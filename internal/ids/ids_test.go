package ids

import (
	"strings"
	"testing"
	"time"
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

func TestAtEncodesTheGivenTime(t *testing.T) {
	early := At("pev", time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	late := At("pev", time.Date(2030, 1, 1, 0, 0, 1, 0, time.UTC))
	if early[:13] >= late[:13] {
		t.Fatalf("an id of an earlier time %q does not sort before a later one %q", early, late)
	}
	if a, b := At("x", time.Unix(5, 0)), At("x", time.Unix(5, 0)); a[:11] != b[:11] || a == b {
		t.Fatalf("two ids of one instant should share their time and differ in their random part: %q %q", a, b)
	}
}
