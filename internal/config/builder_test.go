package config

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/afterlife-oss/afterlife/internal/errs"
)

func loadBuilder(t *testing.T, args []string, env map[string]string) (Builder, error) {
	t.Helper()
	fs := pflag.NewFlagSet("builder", pflag.ContinueOnError)
	AddBuilderFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return LoadBuilder(fs, func(k string) string { return env[k] })
}

func TestTheBuilderReadsFlagsThenEnvThenFileThenDefaults(t *testing.T) {
	file := filepath.Join(t.TempDir(), "builder.yaml")
	os.WriteFile(file, []byte("version: 1\ncoordinator: https://file.example\nname: from-file\nmax_cpus: 4\nmax_write: 2GiB\nmax_timeout: 30m\n"), 0o644)

	c, err := loadBuilder(t, []string{"--config", file, "--max-cpus", "2", "--key", "flag.key"},
		map[string]string{"AFTERLIFE_BUILDER_TOKEN": "tok", "AFTERLIFE_BUILDER_KEY": "env.key", "AFTERLIFE_BUILDER_MAX_TIMEOUT": "1h"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		got, want any
	}{
		{"a flag beats the file", c.MaxCPUs, 2},
		{"a flag beats the environment", c.Key, "flag.key"},
		{"the environment beats the file", c.MaxTimeout, time.Hour},
		{"the file beats the default", c.Name, "from-file"},
		{"the file sets what nothing else does", c.Coordinator, "https://file.example"},
		{"sizes stay as written", c.MaxWrite, "2GiB"},
		{"the token keeps its variable", c.Token, "tok"},
		{"defaults fill the rest", c.MaxLog, "16MiB"},
		{"the uid range has its default", c.JobUIDs, "1500000000:65536"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.got != tc.want {
				t.Fatalf("got %v, want %v", tc.got, tc.want)
			}
		})
	}
}

func TestTheBuilderKeepsTheVariablesItAlwaysRead(t *testing.T) {
	c, err := loadBuilder(t, nil, map[string]string{
		"AFTERLIFE_COORDINATOR": "https://afterlife.example", "AFTERLIFE_BUILDER_TOKEN": "tok", "AFTERLIFE_BUILDER_KEY": "b.key",
	})
	if err != nil {
		t.Fatal(err)
	}
	if c.Coordinator != "https://afterlife.example" || c.Token != "tok" || c.Key != "b.key" {
		t.Fatalf("got %+v", c)
	}
}

func TestTheBuilderRefusesWhatItCannotRunWith(t *testing.T) {
	full := map[string]string{"AFTERLIFE_COORDINATOR": "https://afterlife.example", "AFTERLIFE_BUILDER_TOKEN": "tok", "AFTERLIFE_BUILDER_KEY": "b.key"}
	dir := t.TempDir()
	unknown := filepath.Join(dir, "unknown.yaml")
	os.WriteFile(unknown, []byte("version: 1\nquorum: 3\n"), 0o644)
	unversioned := filepath.Join(dir, "unversioned.yaml")
	os.WriteFile(unversioned, []byte("name: b1\n"), 0o644)
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
	}{
		{"no coordinator, token or key", nil, nil},
		{"a token but no key", []string{"--coordinator", "https://a.example", "--token", "t"}, nil},
		{"a serve setting in its file", []string{"--config", unknown}, full},
		{"a file without its version", []string{"--config", unversioned}, full},
		{"a count that is not a number", []string{"--max-procs", "many"}, full},
		{"a timeout that is not a duration", nil, map[string]string{"AFTERLIFE_COORDINATOR": "x", "AFTERLIFE_BUILDER_TOKEN": "t", "AFTERLIFE_BUILDER_KEY": "k", "AFTERLIFE_BUILDER_MAX_TIMEOUT": "soon"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadBuilder(t, tc.args, tc.env)
			if !errs.Is(err, errs.Invalid) {
				t.Fatalf("err = %v, want Invalid", err)
			}
		})
	}
}
