package testenv_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/afterlife-oss/afterlife/internal/testenv"
)

// failures stands in for a test so that Logger's verdict can be read.
type failures struct {
	testing.TB
	errs     []string
	cleanups []func()
}

func (f *failures) Error(args ...any) { f.errs = append(f.errs, fmt.Sprint(args...)) }
func (f *failures) Cleanup(fn func()) { f.cleanups = append(f.cleanups, fn) }
func (f *failures) end() {
	slices.Reverse(f.cleanups)
	for _, fn := range f.cleanups {
		fn()
	}
}

func TestLoggerFailsOnLinesThatBreakTheKeyRule(t *testing.T) {
	boom := errors.New("boom")
	for _, c := range []struct {
		name string
		log  func(*slog.Logger)
		want string // in the failure; "" for none
	}{
		{"a line with each key once and its error under err passes",
			func(l *slog.Logger) { l.With("part", "farm").Warn("m", "job", "j1", "err", boom) }, ""},
		{"an error under \"error\" fails",
			func(l *slog.Logger) { l.Warn("m", "error", boom) }, `the key "error" holds an error`},
		{"an error under \"error\" in a group fails",
			func(l *slog.Logger) { l.WithGroup("req").Warn("m", slog.Any("error", boom)) }, `"req.error"`},
		{"a key the logger was made with, given again, fails",
			func(l *slog.Logger) { l.With("builder", "b1").Info("m", "builder", "b1") }, "repeats builder"},
		{"a key given twice by nested Withs fails",
			func(l *slog.Logger) { l.With("part", "builder").With("part", "agent").Info("m") }, "repeats part"},
		{"the same key in two groups passes",
			func(l *slog.Logger) { l.With("id", 1).WithGroup("job").Info("m", "id", 2) }, ""},
		{"a key repeated inside an inlined group fails",
			func(l *slog.Logger) { l.Info("m", "id", 1, slog.Group("", "id", 2)) }, "repeats id"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := &failures{TB: t}
			c.log(testenv.Logger(f))
			f.end()
			got := strings.Join(f.errs, "\n")
			if c.want == "" && got != "" || !strings.Contains(got, c.want) {
				t.Fatalf("failures %q, want one naming %q", got, c.want)
			}
		})
	}
}

func TestTextLogKeysReadsWhatSlogsTextHandlerWrites(t *testing.T) {
	for _, c := range []struct {
		name  string
		attrs []any
		want  []string
	}{
		{"plain keys", []any{"part", "farm", "n", 3}, []string{"part", "n"}},
		{"values with spaces, quotes, equals signs and newlines",
			[]any{"a", `x = "y"`, "b", "two\nlines", "c", ""}, []string{"a", "b", "c"}},
		{"a key that must be quoted", []any{"odd key", 1, "k=v", 2}, []string{"odd key", "k=v"}},
		{"groups are dotted", []any{slog.Group("job", "id", "j1", "build", "b1")}, []string{"job.id", "job.build"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var buf bytes.Buffer
			slog.New(slog.NewTextHandler(&buf, nil)).Info("a message with = and \"quotes\"", c.attrs...)
			keys, ok := testenv.TextLogKeys(strings.TrimSuffix(buf.String(), "\n"))
			want := append([]string{"time", "level", "msg"}, c.want...)
			if !ok || !slices.Equal(keys, want) {
				t.Fatalf("TextLogKeys(%q) = %q, %v; want %q", buf.String(), keys, ok, want)
			}
		})
	}
	t.Run("other output is not a log line", func(t *testing.T) {
		for _, line := range []string{"panic: boom", "", "goroutine 1 [running]:", `time="unterminated`} {
			if keys, ok := testenv.TextLogKeys(line); ok {
				t.Errorf("TextLogKeys(%q) = %q, true", line, keys)
			}
		}
	})
}
