// Package cli is what every client command of afterlife shares: the
// --server, --token and --token-file flags, the JSON API client that turns
// the API's error answers back into errors with kinds, printing data, and
// the exit code of an error. Each part's commands live next to the part
// (escrow/cli, recipes/cli, builder/cli, registry/cli) and build on this.
// It must never link server code: no web framework, database driver or
// migration tool (docs/architecture.md).
package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hashicorp/go-retryablehttp"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/httpclient"
)

// Flags are the settings every client command shares.
type Flags struct {
	server    string
	token     string
	tokenFile string
}

// Add declares the flags on cmd and its subcommands.
func (f *Flags) Add(cmd *cobra.Command) {
	cmd.PersistentFlags().StringVar(&f.server, "server", EnvOr("AFTERLIFE_SERVER", "http://127.0.0.1:8080"), "afterlife server URL (env AFTERLIFE_SERVER)")
	cmd.PersistentFlags().StringVar(&f.token, "token", os.Getenv("AFTERLIFE_TOKEN"), "API token (env AFTERLIFE_TOKEN)")
	cmd.PersistentFlags().StringVar(&f.tokenFile, "token-file", "", "read the API token from this file (default: ./data/admin.token when present and no token is given)")
}

// EnvOr is the environment variable name, or def when it is unset or empty.
func EnvOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// Server returns the server URL without a trailing slash and the token the
// flags give: --token-file, else --token, else ./data/admin.token when it
// exists (the token serve writes on first start).
func (f *Flags) Server() (base, token string, err error) {
	token = f.token
	switch {
	case f.tokenFile != "":
		if token, err = ReadTokenFile(f.tokenFile); err != nil {
			return "", "", err
		}
	case token == "":
		if t, err := ReadTokenFile(filepath.Join("data", "admin.token")); err == nil {
			token = t
		}
	}
	return strings.TrimRight(f.server, "/"), token, nil
}

// ReadTokenFile reads a token written by serve or by hand.
func ReadTokenFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", errs.Wrap(errs.Invalid, err, "token file")
	}
	return strings.TrimSpace(string(b)), nil
}

// Call makes one JSON API call with the flags' server and token: in, when
// not nil, is sent as JSON; the answer is decoded into out, when not nil.
func (f *Flags) Call(ctx context.Context, method, path string, in, out any) error {
	base, token, err := f.Server()
	if err != nil {
		return err
	}
	c := client{base: base, token: token, http: httpclient.New(httpclient.Options{RetryMax: 4})}
	return c.do(ctx, method, path, in, out)
}

// client speaks the /v1 JSON API and turns error bodies back into errors
// with kinds.
type client struct {
	base  string
	token string
	http  *retryablehttp.Client
}

func (c client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := retryablehttp.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return errs.Wrap(errs.Invalid, err, "request %s %s", method, path)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return errs.Wrap(errs.Unavailable, err, "cannot reach %s", c.base)
	}
	defer httpclient.Drain(resp)
	if resp.StatusCode >= 400 {
		return httpclient.DecodeError(resp, "")
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decode answer: %w", err)
	}
	return nil
}

// PrintJSON writes v indented, for commands whose output is data.
func PrintJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// ExitCode is the process exit status for a command's error: 130 when
// interrupted, 2 for invalid input, 1 otherwise.
func ExitCode(err error) int {
	switch {
	case errors.Is(err, context.Canceled):
		return 130
	case errs.Is(err, errs.Invalid):
		return 2
	default:
		return 1
	}
}

// Dash is s, or "-" when s is empty, for table columns.
func Dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// Day is t in local time to the minute, or "-" when t is zero, for table
// columns.
func Day(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04")
}

// Output is the --output flag of a command that prints data: a table for a
// person at a terminal, the API's JSON for a program.
type Output struct {
	format string
	// terminal says whether w is a terminal; nil means checking the file
	// descriptor (tests set it).
	terminal func(w io.Writer) bool
}

// Output formats.
const (
	OutputTable = "table"
	OutputJSON  = "json"
)

// Add declares --output on cmd, with its shell completion.
func (o *Output) Add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&o.format, "output", "", "table or json (default: table on a terminal, json when piped)")
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{OutputTable, OutputJSON}, cobra.ShellCompDirectiveNoFileComp))
}

// Format is the format output to w takes: the flag's, else a table on a
// terminal and JSON otherwise.
func (o *Output) Format(w io.Writer) (string, error) {
	switch o.format {
	case OutputTable, OutputJSON:
		return o.format, nil
	case "":
		isTerm := o.terminal
		if isTerm == nil {
			isTerm = IsTerminal
		}
		if isTerm(w) {
			return OutputTable, nil
		}
		return OutputJSON, nil
	default:
		return "", errs.E(errs.Invalid, "--output %q: want table or json", o.format)
	}
}

// Print writes answer (the API's JSON) indented, or calls table with a
// tabwriter that it flushes afterwards.
func (o *Output) Print(w io.Writer, answer json.RawMessage, table func(tw io.Writer) error) error {
	format, err := o.Format(w)
	if err != nil {
		return err
	}
	if format == OutputJSON {
		var buf bytes.Buffer
		if err := json.Indent(&buf, answer, "", "  "); err != nil {
			return fmt.Errorf("indent answer: %w", err)
		}
		buf.WriteByte('\n')
		_, err := w.Write(buf.Bytes())
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if err := table(tw); err != nil {
		return err
	}
	return tw.Flush()
}

// IsTerminal says whether w is a terminal.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// Confirm asks question on cmd's error stream and reads a yes or no from
// its input, when someone can answer: the input is a terminal, or a test
// set it (cmd.SetIn). Otherwise, as in a script, it answers yes: the
// question was the command's output and the caller's --yes is implied.
func Confirm(cmd *cobra.Command, question string) (bool, error) {
	in := cmd.InOrStdin()
	if f, ok := in.(*os.File); ok && (f != os.Stdin || !term.IsTerminal(int(f.Fd()))) {
		return true, nil
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "%s [y/N] ", question)
	line, err := bufio.NewReader(in).ReadString('\n')
	if err != nil && line == "" {
		if errors.Is(err, io.EOF) {
			return false, nil
		}
		return false, err
	}
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return true, nil
	}
	return false, nil
}

// Version is what a binary reports as its version: stamped (set at build
// time with -ldflags -X) unless it is "dev", else the commit the binary was
// built from (with "-dirty" for uncommitted changes), else "dev".
func Version(stamped string) string {
	if stamped != "dev" {
		return stamped
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return stamped
	}
	var rev, dirty string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "-dirty"
			}
		}
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if rev == "" {
		return stamped
	}
	return "dev-" + rev + dirty
}
