package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func load(t *testing.T, args []string, env map[string]string) (Serve, error) {
	t.Helper()
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	AddServeFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return LoadServe(fs, func(k string) string { return env[k] })
}

func TestPrecedenceIsFlagsThenEnvThenFileThenDefaults(t *testing.T) {
	file := filepath.Join(t.TempDir(), "afterlife.yaml")
	os.WriteFile(file, []byte("version: 1\naddr: 127.0.0.1:9000\nquorum: 3\nlease_ttl: 2m\nlocal_builders: 1\n"), 0o644)

	c, err := load(t, []string{"--config", file, "--quorum", "4"}, map[string]string{"AFTERLIFE_LEASE_TTL": "90s"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		got, want any
	}{
		{"a flag beats the file", c.Quorum, 4},
		{"the environment beats the file", c.LeaseTTL, 90 * time.Second},
		{"the file beats the default", c.Addr, "127.0.0.1:9000"},
		{"the file sets what nothing else does", c.LocalBuilders, 1},
		{"defaults fill the rest", c.LogLevel, "info"},
		{"the public URL follows the address", c.PublicURL, "http://127.0.0.1:9000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.got != tc.want {
				t.Fatalf("got %v, want %v", tc.got, tc.want)
			}
		})
	}
}

func TestDefaultsKeepEverythingUnderData(t *testing.T) {
	c, err := load(t, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != "127.0.0.1:8080" || !filepath.IsAbs(c.Data) || filepath.Base(c.Data) != "data" {
		t.Fatalf("addr %q data %q", c.Addr, c.Data)
	}
	if !strings.HasPrefix(c.DatabaseURL(), "sqlite:"+c.Data) || c.Keys != filepath.Join(c.Data, "keys") {
		t.Fatalf("database %q keys %q not under %q", c.DatabaseURL(), c.Keys, c.Data)
	}
}

func TestBadSettingsAreNamed(t *testing.T) {
	dir := t.TempDir()
	unknown := filepath.Join(dir, "unknown.yaml")
	os.WriteFile(unknown, []byte("version: 1\nadress: x\n"), 0o644)
	noVersion := filepath.Join(dir, "noversion.yaml")
	os.WriteFile(noVersion, []byte("addr: x\n"), 0o644)
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"an unknown YAML key", []string{"--config", unknown}, nil, `unknown setting "adress"`},
		{"a file without its version", []string{"--config", noVersion}, nil, "version: 1"},
		{"a bad duration in the environment", nil, map[string]string{"AFTERLIFE_LEASE_TTL": "soon"}, "lease-ttl"},
		{"a database that is neither", []string{"--database", "mysql://x"}, nil, "postgres://"},
		{"a blob store that is not s3", []string{"--blobs", "gs://x"}, nil, "s3://"},
		{"a bad size", []string{"--max-file-size", "lots"}, nil, "max-file-size"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := load(t, tc.args, tc.env)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

func TestParseSizeAndDuration(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "512": 512, "4KiB": 4096, "256MiB": 256 << 20, "4GiB": 4 << 30, "2 GB": 2 << 30} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for in, want := range map[string]time.Duration{"30d": 30 * 24 * time.Hour, "90s": 90 * time.Second, "0": 0} {
		if got, err := ParseDuration(in); err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
}
