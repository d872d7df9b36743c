package builder_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/afterlife-oss/afterlife/builder"
)

func TestACappedLogKeepsItsHeadAndTail(t *testing.T) {
	tests := []struct {
		name   string
		limit  int64
		writes []string
		want   func(t *testing.T, got string)
	}{
		{"a log within the limit passes unchanged", 1000, []string{"one\n", "two\n"}, func(t *testing.T, got string) {
			if got != "one\ntwo\n" {
				t.Fatalf("got %q", got)
			}
		}},
		{"no limit passes everything", 0, []string{strings.Repeat("x", 5000)}, func(t *testing.T, got string) {
			if len(got) != 5000 {
				t.Fatalf("got %d bytes", len(got))
			}
		}},
		{"a long log keeps head, note and tail within the limit", 1000, []string{"HEAD\n", strings.Repeat("m", 10_000), "TAIL\n"}, func(t *testing.T, got string) {
			if len(got) > 1000 || !strings.HasPrefix(got, "HEAD\n") || !strings.HasSuffix(got, "TAIL\n") || !strings.Contains(got, "==> log truncated: ") {
				t.Fatalf("got %d bytes: %q", len(got), got)
			}
		}},
		{"many small writes keep the last bytes", 1000, append([]string{"HEAD\n"}, strings.Split(strings.Repeat("line\n", 3000)+"END\n", "\n")...), func(t *testing.T, got string) {
			if len(got) > 1000 || !strings.HasPrefix(got, "HEAD\n") || !strings.HasSuffix(got, "lineEND") {
				t.Fatalf("got %d bytes: %q", len(got), got)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			c := builder.NewCappedLog(&buf, tt.limit)
			for _, w := range tt.writes {
				if n, err := c.Write([]byte(w)); err != nil || n != len(w) {
					t.Fatalf("write %d, %v", n, err)
				}
			}
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
			tt.want(t, buf.String())
		})
	}
}
