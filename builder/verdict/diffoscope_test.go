package verdict

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// requireDiffoscope fails the test when diffoscope is missing: these tests
// exercise the real program.
func requireDiffoscope(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("diffoscope"); err != nil {
		t.Fatal("diffoscope is not on PATH; run scripts/test-deps.sh (it installs the Debian package diffoscope-minimal)")
	}
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDiffoscopeReportsTheDifference(t *testing.T) {
	requireDiffoscope(t)
	dir := t.TempDir()
	a := writeFile(t, dir, "a.txt", "version 1\nbuilt on monday\n")
	b := writeFile(t, dir, "b.txt", "version 1\nbuilt on tuesday\n")
	same := writeFile(t, dir, "same.txt", "version 1\nbuilt on monday\n")
	dash := writeFile(t, dir, "-dash.txt", "version 1\nbuilt on friday\n")

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tests := []struct {
		name     string
		a, b     string
		wantText []string
		wantNone bool
	}{
		{"different files give a report naming the changed lines", a, b, []string{"monday", "tuesday"}, false},
		{"identical files give an empty report", a, same, nil, true},
		{"a file name starting with a dash is read as a file", a, dash, []string{"friday"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			report, err := Diffoscope(ctx, tc.a, tc.b)
			if err != nil {
				t.Fatalf("Diffoscope: %v", err)
			}
			if tc.wantNone && strings.TrimSpace(report) != "" {
				t.Errorf("report for identical files = %q, want empty", report)
			}
			for _, w := range tc.wantText {
				if !strings.Contains(report, w) {
					t.Errorf("report does not mention %q:\n%s", w, report)
				}
			}
		})
	}
}

func TestDiffoscopeFailsOnAMissingFile(t *testing.T) {
	requireDiffoscope(t)
	dir := t.TempDir()
	a := writeFile(t, dir, "a.txt", "x\n")
	_, err := Diffoscope(context.Background(), a, filepath.Join(dir, "absent"))
	if err == nil {
		t.Fatal("Diffoscope on a missing file returned no error")
	}
}

func TestDiffoscopeStopsAtTheDeadline(t *testing.T) {
	requireDiffoscope(t)
	dir := t.TempDir()
	a := writeFile(t, dir, "a.txt", "one\n")
	b := writeFile(t, dir, "b.txt", "two\n")
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := Diffoscope(ctx, a, b)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Diffoscope error = %v, want deadline exceeded", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("Diffoscope took %s after its deadline", took)
	}
}

func TestDiffoscopeIsOptional(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	report, err := Diffoscope(context.Background(), "a", "b")
	if !errors.Is(err, ErrNoDiffoscope) || report != "" {
		t.Fatalf("Diffoscope without diffoscope = (%q, %v), want ErrNoDiffoscope", report, err)
	}
}

func TestBoundedBufferKeepsOnlyItsLimit(t *testing.T) {
	tests := []struct {
		name    string
		writes  []string
		want    string
		wantCut bool
	}{
		{"writes within the limit are kept whole", []string{"ab", "cd"}, "abcd", false},
		{"a write crossing the limit is cut at the limit", []string{"abc", "defg"}, "abcde", true},
		{"writes after the limit are dropped", []string{"abcde", "f", "g"}, "abcde", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := &boundedBuffer{limit: 5}
			for _, s := range tc.writes {
				n, err := w.Write([]byte(s))
				if n != len(s) || err != nil {
					t.Fatalf("Write(%q) = %d, %v; want every byte accepted", s, n, err)
				}
			}
			if w.buf.String() != tc.want || w.cut != tc.wantCut {
				t.Errorf("buffer = %q cut=%v, want %q cut=%v", w.buf.String(), w.cut, tc.want, tc.wantCut)
			}
		})
	}
}
