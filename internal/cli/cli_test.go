package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/afterlife-oss/afterlife/internal/errs"
)

// flagsFor parses args as a client command would.
func flagsFor(t *testing.T, args ...string) *Flags {
	t.Helper()
	var f Flags
	cmd := &cobra.Command{Use: "x", RunE: func(*cobra.Command, []string) error { return nil }}
	f.Add(cmd)
	cmd.SetArgs(args)
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	return &f
}

func writeToken(t *testing.T, path, token string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestTheTokenComesFromTheFileTheFlagOrTheServersDataDirectory(t *testing.T) {
	t.Setenv("AFTERLIFE_TOKEN", "")
	t.Setenv("AFTERLIFE_SERVER", "")
	dir := t.TempDir()
	t.Chdir(dir)
	writeToken(t, filepath.Join(dir, "data", "admin.token"), "from-data")
	writeToken(t, filepath.Join(dir, "other.token"), "from-file")
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"a token file wins over --token", []string{"--token", "from-flag", "--token-file", "other.token"}, "from-file"},
		{"--token wins over the data directory", []string{"--token", "from-flag"}, "from-flag"},
		{"with neither, data/admin.token is read", nil, "from-data"},
	} {
		t.Run(c.name, func(t *testing.T) {
			base, token, err := flagsFor(t, c.args...).Server()
			if err != nil {
				t.Fatal(err)
			}
			if token != c.want || base != "http://127.0.0.1:8080" {
				t.Fatalf("server %q token %q, want the default server and %q", base, token, c.want)
			}
		})
	}
	t.Run("a token file that cannot be read is invalid input", func(t *testing.T) {
		_, _, err := flagsFor(t, "--token-file", "missing.token").Server()
		if !errs.Is(err, errs.Invalid) {
			t.Fatalf("got %v, want an Invalid error", err)
		}
	})
}

func TestCallSendsTheTokenAndReadsAnswersAndErrorsWithTheirKinds(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer secret" {
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"error":{"code":"unauthenticated","message":"who are you"}}`)
			return
		}
		switch r.URL.Path {
		case "/v1/thing":
			fmt.Fprint(w, `{"id":"t1"}`)
		case "/v1/gone":
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `{"error":{"code":"not_found","message":"no such thing"}}`)
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	}))
	defer srv.Close()
	ctx := context.Background()
	f := flagsFor(t, "--server", srv.URL+"/", "--token", "secret")

	var out struct{ ID string }
	if err := f.Call(ctx, http.MethodGet, "/v1/thing", nil, &out); err != nil || out.ID != "t1" {
		t.Fatalf("answer %+v, err %v", out, err)
	}
	if err := f.Call(ctx, http.MethodPost, "/v1/empty", map[string]string{"a": "b"}, &out); err != nil {
		t.Fatalf("no content: %v", err)
	}
	for _, c := range []struct {
		name  string
		flags *Flags
		path  string
		kind  errs.Kind
	}{
		{"a missing resource is NotFound", f, "/v1/gone", errs.NotFound},
		{"a bad token is Unauthenticated", flagsFor(t, "--server", srv.URL, "--token", "wrong"), "/v1/thing", errs.Unauthenticated},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := c.flags.Call(ctx, http.MethodGet, c.path, nil, nil)
			if !errs.Is(err, c.kind) {
				t.Fatalf("got %v, want kind %v", err, c.kind)
			}
		})
	}
}

func TestExitCodesSayWhatWentWrong(t *testing.T) {
	for _, c := range []struct {
		name string
		err  error
		want int
	}{
		{"an interrupted command exits 130", fmt.Errorf("upload: %w", context.Canceled), 130},
		{"invalid input exits 2", errs.E(errs.Invalid, "bad flag"), 2},
		{"anything else exits 1", errors.New("boom"), 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := ExitCode(c.err); got != c.want {
				t.Fatalf("exit %d, want %d", got, c.want)
			}
		})
	}
}

func TestOutputIsATableOnATerminalAndJSONOtherwise(t *testing.T) {
	answer := json.RawMessage(`{"items":[{"id":"a"}]}`)
	table := func(w io.Writer) error {
		fmt.Fprintln(w, "ID\tNAME")
		fmt.Fprintln(w, "a\tfirst")
		return nil
	}
	for _, tc := range []struct {
		name     string
		flag     string
		terminal bool
		want     string
		invalid  bool
	}{
		{name: "a terminal gets a table", terminal: true, want: "ID  NAME\na   first\n"},
		{name: "a pipe gets the API's JSON", want: "{\n  \"items\": [\n    {\n      \"id\": \"a\"\n    }\n  ]\n}\n"},
		{name: "--output table wins over a pipe", flag: "table", want: "ID  NAME\na   first\n"},
		{name: "--output json wins over a terminal", flag: "json", terminal: true, want: "{\n  \"items\""},
		{name: "an unknown format is invalid input", flag: "yaml", invalid: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var o Output
			cmd := &cobra.Command{Use: "x", RunE: func(*cobra.Command, []string) error { return nil }}
			o.Add(cmd)
			if tc.flag != "" {
				cmd.SetArgs([]string{"--output", tc.flag})
			}
			if err := cmd.Execute(); err != nil {
				t.Fatal(err)
			}
			o.terminal = func(io.Writer) bool { return tc.terminal }
			var buf bytes.Buffer
			err := o.Print(&buf, answer, table)
			if tc.invalid {
				if !errs.Is(err, errs.Invalid) {
					t.Fatalf("err %v, want an invalid-input error", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(buf.String(), tc.want) {
				t.Fatalf("printed %q, want it to start with %q", buf.String(), tc.want)
			}
		})
	}
}
