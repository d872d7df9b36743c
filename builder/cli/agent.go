// Package cli holds the build farm's commands of afterlife: the builder
// agent an operator runs (builder), and showing builds and their verdicts
// (build). The agent talks to the coordinator through builder/farmclient.
package cli

import (
	"crypto/ed25519"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/afterlife-oss/afterlife/builder/agent"
	"github.com/afterlife-oss/afterlife/builder/farmclient"
	"github.com/afterlife-oss/afterlife/builder/keys"
	"github.com/afterlife-oss/afterlife/builder/sandbox"
	"github.com/afterlife-oss/afterlife/builder/toolchain"
	"github.com/afterlife-oss/afterlife/internal/config"
	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/httpclient"
	"github.com/afterlife-oss/afterlife/recipes"
)

// BuilderCommand is "afterlife builder": the builder agent and its keygen.
// version is the binary's, reported to the coordinator.
func BuilderCommand(version string) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "builder",
		Short: "Run a builder agent: pull jobs, build in a sandbox, return signed results",
		Long: `Run a builder agent for a coordinator (an afterlife server).

The agent registers its ed25519 public key and the toolchains it
really has (detected on this machine), long-polls for jobs it can run, fetches every
input by digest and checks it, runs the recipe's steps in a bubblewrap sandbox (no
network, fixed paths, cleared environment, SOURCE_DATE_EPOCH, TZ=UTC, limits), and
uploads the outputs, the log, a buildinfo and an in-toto attestation with an SLSA
provenance predicate signed with its key. SIGTERM gives the current job back.

Every job is bounded by this builder's maxima (--max-*) and the coordinator's: a
recipe asking for more time, memory or CPUs than this builder allows is refused with
a reason naming the limit; processes and memory are held by cgroups (v1 or v2),
bytes written by a size-limited tmpfs, and the log keeps its head and tail. Run as
root, each job runs under a host uid of its own from --job-uids (never root), so
RLIMIT_NPROC holds too; run as another user, jobs run as that user and writes are
not bounded.

Builds agree only across builders of distinct operators, and the operator is not
the builder's to say: an admin binds its token to an operator organisation
(afterlife admin token create --role builder --operator ORG, or afterlife admin
token bind for an older token). An unbound builder gets no jobs.

Caches: the warm build cache (/cache in the sandbox, GOCACHE) is kept per recipe
repository, toolchain and architecture under --work, never shared between
repositories; the job the coordinator names the cold witness runs with an empty
/cache of its own.

It needs a builder token bound to an operator and a key file (afterlife builder
keygen FILE).

Every setting is a flag, an AFTERLIFE_BUILDER_* environment variable
(AFTERLIFE_COORDINATOR for the coordinator) or a key of the YAML file given
with --config (version: 1); flags win over the environment, the environment
over the file. docs/builder-settings.md lists them.`,
		Example: `  afterlife builder keygen builder.key
  afterlife builder --coordinator https://afterlife.example --token "$TOKEN" --key builder.key`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.LoadBuilder(cmd.Flags(), os.Getenv)
			if err != nil {
				return err
			}
			var level slog.Level
			_ = level.UnmarshalText([]byte(cfg.LogLevel))
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level}))
			key, err := keys.Load(cfg.Key)
			if err != nil {
				return err
			}
			if err := sandbox.Available(); err != nil {
				return err
			}
			tcs, err := toolchain.Detect(cmd.Context())
			if err != nil {
				return err
			}
			name, work := cfg.Name, cfg.Work
			if name == "" {
				host, _ := os.Hostname()
				name = host
			}
			maxima, maxLogBytes, uids, err := builderMaxima(cfg)
			if err != nil {
				return err
			}
			if work == "" {
				cache, err := os.UserCacheDir()
				if err != nil {
					return err
				}
				work = filepath.Join(cache, "afterlife", "builder", name)
			}
			client := farmclient.New(cfg.Coordinator, cfg.Token, farmclient.Options{HTTP: httpclient.Options{Logger: log, WaitMax: 30 * time.Second, RetryMax: 1000}, Logger: log})
			a, err := agent.New(agent.Options{
				Coordinator: client,
				Key:         key, Name: name,
				WorkDir: filepath.Join(work, "work"), CacheDir: filepath.Join(work, "cache"),
				Toolchains: tcs, Extract: ExtractSource, Version: version, Logger: log,
				MaxLimits: maxima, MaxLogBytes: maxLogBytes, UIDs: uids,
			})
			if err != nil {
				return err
			}
			log.Info("builder starting", "coordinator", cfg.Coordinator, "name", name, "toolchains", len(tcs), "key_id", keys.KeyID(key.Public().(ed25519.PublicKey)))
			if err := startWitness(cmd.Context(), client, cfg.WitnessKey, name, cfg.WitnessEvery, log); err != nil {
				return err
			}
			return a.Run(cmd.Context())
		},
	}
	config.AddBuilderFlags(cmd.Flags())

	keygen := &cobra.Command{
		Use:   "keygen FILE",
		Short: "Create a builder's ed25519 key (mode 0600) and print its public key",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			k, err := keys.Generate(args[0])
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), keys.PublicKeyString(k.Public().(ed25519.PublicKey)))
			return nil
		},
	}
	cmd.AddCommand(keygen)
	return cmd
}

// builderMaxima turns the builder's --max-* and --job-uids settings into
// the agent's options. Sizes are read as recipes write them.
func builderMaxima(c config.Builder) (sandbox.Limits, int64, sandbox.UIDRange, error) {
	var r sandbox.UIDRange
	mem, err := recipes.ParseByteSize(c.MaxMemory)
	if err != nil {
		return sandbox.Limits{}, 0, r, errs.Wrap(errs.Invalid, err, "--max-memory")
	}
	wr, err := recipes.ParseByteSize(c.MaxWrite)
	if err != nil {
		return sandbox.Limits{}, 0, r, errs.Wrap(errs.Invalid, err, "--max-write")
	}
	lg, err := recipes.ParseByteSize(c.MaxLog)
	if err != nil {
		return sandbox.Limits{}, 0, r, errs.Wrap(errs.Invalid, err, "--max-log")
	}
	first, count, ok := strings.Cut(c.JobUIDs, ":")
	f, ferr := strconv.ParseUint(first, 10, 32)
	n, cerr := strconv.ParseUint(count, 10, 32)
	if !ok || ferr != nil || cerr != nil || f == 0 || n == 0 {
		return sandbox.Limits{}, 0, r, errs.E(errs.Invalid, "--job-uids %q: want FIRST:COUNT, e.g. 1500000000:65536", c.JobUIDs)
	}
	if c.MaxTimeout <= 0 || c.MaxCPUs <= 0 || c.MaxProcs <= 0 || mem <= 0 || wr <= 0 || lg <= 0 {
		return sandbox.Limits{}, 0, r, errs.E(errs.Invalid, "the --max-* flags must be positive")
	}
	return sandbox.Limits{Timeout: c.MaxTimeout, MemoryBytes: int64(mem), CPUs: c.MaxCPUs, MaxProcs: c.MaxProcs, WriteBytes: int64(wr)},
		int64(lg), sandbox.UIDRange{First: uint32(f), Count: uint32(n)}, nil
}

// ExtractSource unpacks a recipe's source archive into dir, as every agent
// does (here and the local builders of serve).
func ExtractSource(r io.Reader, dir string) error {
	return recipes.Extract(r, dir, recipes.ExtractLimits{})
}
