package cli

import (
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/afterlife-oss/afterlife/builder/sandbox"
	"github.com/afterlife-oss/afterlife/internal/config"
	"github.com/afterlife-oss/afterlife/recipes"
)

// internal/config imports no part, so it writes the builder's default
// maxima as text; they must stay the recipe format's and the sandbox's.
func TestTheBuilderDefaultsAreTheRecipeMaximaAndTheSandboxUIDs(t *testing.T) {
	fs := pflag.NewFlagSet("builder", pflag.ContinueOnError)
	config.AddBuilderFlags(fs)
	env := map[string]string{"AFTERLIFE_COORDINATOR": "https://afterlife.example", "AFTERLIFE_BUILDER_TOKEN": "t", "AFTERLIFE_BUILDER_KEY": "k"}
	cfg, err := config.LoadBuilder(fs, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	limits, maxLog, uids, err := builderMaxima(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name      string
		got, want any
	}{
		{"the timeout", limits.Timeout, time.Duration(recipes.DefaultMaxima.Timeout)},
		{"the memory", limits.MemoryBytes, int64(recipes.DefaultMaxima.Memory)},
		{"the CPUs", limits.CPUs, recipes.DefaultMaxima.CPUs},
		{"the uid range", uids, sandbox.DefaultUIDs},
		{"the processes", limits.MaxProcs, 1024},
		{"the bytes written", limits.WriteBytes, int64(8 << 30)},
		{"the log", maxLog, int64(16 << 20)},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.got != c.want {
				t.Fatalf("default %v, want %v", c.got, c.want)
			}
		})
	}
}
