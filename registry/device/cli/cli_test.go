package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

func TestTheStateDirectory(t *testing.T) {
	dir := t.TempDir()
	legacy := filepath.Join(dir, "xdg", "afterlife", "device")
	if err := os.MkdirAll(legacy, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(legacy, "config.json"), []byte(`{"device_id":"usb:1:2"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("XDG_STATE_HOME", filepath.Join(dir, "xdg"))
	t.Setenv("AFTERLIFE_DEVICE_STATE", "")
	fresh := filepath.Join(dir, "var-lib-afterlife")
	for _, tc := range []struct {
		name     string
		args     []string
		initHere bool // the default directory holds a device already
		want     string
		note     bool
	}{
		{"a device of an earlier version keeps its per-user state, with a note", nil, false, legacy, true},
		{"once the default directory holds a device it is used", nil, true, fresh, false},
		{"--state always wins", []string{"--state", filepath.Join(dir, "other")}, false, filepath.Join(dir, "other"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			os.RemoveAll(fresh)
			if tc.initHere {
				if err := os.MkdirAll(fresh, 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(fresh, "config.json"), []byte(`{}`), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			f := &flags{}
			cmd := &cobra.Command{Use: "x", RunE: func(*cobra.Command, []string) error { return nil }}
			cmd.Flags().StringVar(&f.state, "state", fresh, "")
			var errw bytes.Buffer
			cmd.SetErr(&errw)
			cmd.SetArgs(tc.args)
			if err := cmd.Execute(); err != nil {
				t.Fatal(err)
			}
			if got := f.stateDir(cmd); got != tc.want {
				t.Fatalf("state dir = %s, want %s", got, tc.want)
			}
			if gotNote := strings.Contains(errw.String(), "earlier versions"); gotNote != tc.note {
				t.Fatalf("note = %q, want one: %v", errw.String(), tc.note)
			}
		})
	}
}
