package testenv

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// The house rule for log lines: every key appears once in a line (a logger
// made With a key is not given that key again), and an error goes under
// "err", never "error". Logger checks it in-process; the servers and
// builders this package starts have their logs checked when they stop.

// LogKeyProblem says what breaks the rule in one line's keys (dotted for
// groups, as slog's text handler writes them), or "" when nothing does.
func LogKeyProblem(keys []string) string {
	var problems []string
	seen := map[string]bool{}
	for _, k := range keys {
		if k == "error" || strings.HasSuffix(k, ".error") {
			problems = append(problems, fmt.Sprintf("the key %q holds an error: use \"err\"", k))
		}
		if seen[k] && !slices.Contains(problems, "repeats "+k) {
			problems = append(problems, "repeats "+k)
		}
		seen[k] = true
	}
	return strings.Join(problems, "; ")
}

// Logger is a logger for code under test that fails t when a record breaks
// the rule (see LogKeyProblem), counting the keys the logger was made With.
// It writes nothing. Problems are reported when the test ends, so records
// from goroutines that outlive it cannot fail another test.
func Logger(t testing.TB) *slog.Logger {
	l := &keyLog{}
	t.Cleanup(func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		for _, p := range l.problems {
			t.Error(p)
		}
		l.done = true
	})
	return slog.New(&keyCheck{log: l})
}

type keyLog struct {
	mu       sync.Mutex
	problems []string
	done     bool
}

// keyCheck is a slog.Handler that records rule breaks in log.
type keyCheck struct {
	log    *keyLog
	keys   []string // carried by the logger (With), qualified
	prefix string   // the open groups, "a.b." (WithGroup)
}

func (h *keyCheck) Enabled(context.Context, slog.Level) bool { return true }

func (h *keyCheck) Handle(_ context.Context, r slog.Record) error {
	keys := slices.Clone(h.keys)
	r.Attrs(func(a slog.Attr) bool {
		keys = appendKeys(keys, h.prefix, a)
		return true
	})
	if p := LogKeyProblem(keys); p != "" {
		h.log.mu.Lock()
		if !h.log.done {
			h.log.problems = append(h.log.problems, fmt.Sprintf("log line %q with keys %v: %s", r.Message, keys, p))
		}
		h.log.mu.Unlock()
	}
	return nil
}

func (h *keyCheck) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.keys = slices.Clone(h.keys)
	for _, a := range as {
		c.keys = appendKeys(c.keys, h.prefix, a)
	}
	return &c
}

func (h *keyCheck) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	c := *h
	c.prefix = h.prefix + name + "."
	return &c
}

// appendKeys adds a's qualified keys as slog's handlers would write them:
// an empty attribute is dropped, a group's members are prefixed with its
// key, or inlined when it has none.
func appendKeys(keys []string, prefix string, a slog.Attr) []string {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return keys
	}
	if a.Value.Kind() != slog.KindGroup {
		return append(keys, prefix+a.Key)
	}
	if a.Key != "" {
		prefix += a.Key + "."
	}
	for _, m := range a.Value.Group() {
		keys = appendKeys(keys, prefix, m)
	}
	return keys
}

// TextLogKeys returns the keys of one line written by slog's text handler,
// and false when the line is not one (other output in a process's log).
func TextLogKeys(line string) ([]string, bool) {
	if !strings.HasPrefix(line, "time=") {
		return nil, false
	}
	var keys []string
	for rest := line; ; {
		rest = strings.TrimLeft(rest, " ")
		if rest == "" {
			return keys, true
		}
		var key string
		if rest[0] == '"' {
			q, err := strconv.QuotedPrefix(rest)
			if err != nil {
				return nil, false
			}
			key, _ = strconv.Unquote(q)
			rest = rest[len(q):]
		} else {
			i := strings.IndexAny(rest, "= ")
			if i < 0 || rest[i] != '=' {
				return nil, false
			}
			key, rest = rest[:i], rest[i:]
		}
		if !strings.HasPrefix(rest, "=") {
			return nil, false
		}
		rest = rest[1:]
		if strings.HasPrefix(rest, `"`) {
			q, err := strconv.QuotedPrefix(rest)
			if err != nil {
				return nil, false
			}
			rest = rest[len(q):]
		} else if i := strings.IndexByte(rest, ' '); i >= 0 {
			rest = rest[i:]
		} else {
			rest = ""
		}
		keys = append(keys, key)
	}
}

// checkLogFile fails t for every line of a process's log that breaks the
// rule, naming at most a few.
func checkLogFile(t testing.TB, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		return // a process that never started has no log to check
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	bad := 0
	for sc.Scan() {
		keys, ok := TextLogKeys(sc.Text())
		if !ok {
			continue
		}
		if p := LogKeyProblem(keys); p != "" {
			if bad++; bad <= 5 {
				t.Errorf("testenv: %s: %s in\n\t%s", path, p, sc.Text())
			}
		}
	}
	if bad > 5 {
		t.Errorf("testenv: %s: %d more log lines break the key rule", path, bad-5)
	}
}
