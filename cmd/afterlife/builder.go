package main

import (
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/afterlife-oss/afterlife/builder/agent"
	"github.com/afterlife-oss/afterlife/builder/farmhttp"
	"github.com/afterlife-oss/afterlife/builder/keys"
	"github.com/afterlife-oss/afterlife/builder/sandbox"
	"github.com/afterlife-oss/afterlife/builder/toolchain"
	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/httpclient"
	"github.com/afterlife-oss/afterlife/recipes"
)

func newBuilderCmd() *cobra.Command {
	var coordinator, token, keyFile, work, name, logLevel string
	var maxTimeout time.Duration
	var maxMemory, maxWrite, maxLog, jobUIDs string
	var maxCPUs, maxProcs int
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
keygen FILE).`,
		Example: `  afterlife builder keygen builder.key
  afterlife builder --coordinator https://afterlife.example --token "$TOKEN" --key builder.key`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if coordinator == "" || token == "" || keyFile == "" {
				return errs.E(errs.Invalid, "--coordinator, --token and --key are required (or AFTERLIFE_COORDINATOR, AFTERLIFE_BUILDER_TOKEN, AFTERLIFE_BUILDER_KEY)")
			}
			var level slog.Level
			_ = level.UnmarshalText([]byte(logLevel))
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level}))
			key, err := keys.Load(keyFile)
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
			if name == "" {
				host, _ := os.Hostname()
				name = host
			}
			maxima, maxLogBytes, uids, err := builderMaxima(maxTimeout, maxMemory, maxCPUs, maxProcs, maxWrite, maxLog, jobUIDs)
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
			a, err := agent.New(agent.Options{
				Coordinator: farmhttp.NewClient(coordinator, token, farmhttp.ClientOptions{HTTP: httpclient.Options{Logger: log, WaitMax: 30 * time.Second, RetryMax: 1000}, Logger: log}),
				Key:         key, Name: name,
				WorkDir: filepath.Join(work, "work"), CacheDir: filepath.Join(work, "cache"),
				Toolchains: tcs, Extract: extractSource, Version: version, Logger: log,
				MaxLimits: maxima, MaxLogBytes: maxLogBytes, UIDs: uids,
			})
			if err != nil {
				return err
			}
			log.Info("builder starting", "coordinator", coordinator, "name", name, "toolchains", len(tcs), "key_id", keys.KeyID(key.Public().(ed25519.PublicKey)))
			return a.Run(cmd.Context())
		},
	}
	cmd.Flags().StringVar(&coordinator, "coordinator", os.Getenv("AFTERLIFE_COORDINATOR"), "coordinator URL, e.g. https://afterlife.example (env AFTERLIFE_COORDINATOR)")
	cmd.Flags().StringVar(&token, "token", os.Getenv("AFTERLIFE_BUILDER_TOKEN"), "builder token (env AFTERLIFE_BUILDER_TOKEN)")
	cmd.Flags().StringVar(&keyFile, "key", os.Getenv("AFTERLIFE_BUILDER_KEY"), "ed25519 key file, mode 0600 (env AFTERLIFE_BUILDER_KEY)")
	cmd.Flags().StringVar(&work, "work", "", "work and cache directory (default: the user cache dir)")
	cmd.Flags().StringVar(&name, "name", "", "builder name (default: the host name)")
	cmd.Flags().StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	cmd.Flags().DurationVar(&maxTimeout, "max-timeout", time.Duration(recipes.DefaultMaxima.Timeout), "longest build this builder runs; a recipe asking for more is refused")
	cmd.Flags().StringVar(&maxMemory, "max-memory", recipes.DefaultMaxima.Memory.String(), "most memory one build may use (memory cgroup); a recipe asking for more is refused")
	cmd.Flags().IntVar(&maxCPUs, "max-cpus", recipes.DefaultMaxima.CPUs, "most CPUs one build may ask for; a recipe asking for more is refused (a build is pinned to the CPUs it asks for)")
	cmd.Flags().IntVar(&maxProcs, "max-procs", 1024, "most processes and threads one build may run (pids cgroup, RLIMIT_NPROC)")
	cmd.Flags().StringVar(&maxWrite, "max-write", "8GiB", "most bytes one build may write to /build, /out and /tmp (tmpfs size)")
	cmd.Flags().StringVar(&maxLog, "max-log", "16MiB", "largest build log; a longer one keeps its head and tail with a note")
	cmd.Flags().StringVar(&jobUIDs, "job-uids", fmt.Sprintf("%d:%d", sandbox.DefaultUIDs.First, sandbox.DefaultUIDs.Count), "FIRST:COUNT host uids no account uses; as root, each job runs under one of its own")

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

// builderMaxima turns the builder's --max-* and --job-uids flags into the
// agent's options.
func builderMaxima(timeout time.Duration, memory string, cpus, procs int, write, logSize, uids string) (sandbox.Limits, int64, sandbox.UIDRange, error) {
	var r sandbox.UIDRange
	mem, err := recipes.ParseByteSize(memory)
	if err != nil {
		return sandbox.Limits{}, 0, r, errs.Wrap(errs.Invalid, err, "--max-memory")
	}
	wr, err := recipes.ParseByteSize(write)
	if err != nil {
		return sandbox.Limits{}, 0, r, errs.Wrap(errs.Invalid, err, "--max-write")
	}
	lg, err := recipes.ParseByteSize(logSize)
	if err != nil {
		return sandbox.Limits{}, 0, r, errs.Wrap(errs.Invalid, err, "--max-log")
	}
	first, count, ok := strings.Cut(uids, ":")
	f, ferr := strconv.ParseUint(first, 10, 32)
	c, cerr := strconv.ParseUint(count, 10, 32)
	if !ok || ferr != nil || cerr != nil || f == 0 || c == 0 {
		return sandbox.Limits{}, 0, r, errs.E(errs.Invalid, "--job-uids %q: want FIRST:COUNT, e.g. 1500000000:65536", uids)
	}
	if timeout <= 0 || cpus <= 0 || procs <= 0 || mem <= 0 || wr <= 0 || lg <= 0 {
		return sandbox.Limits{}, 0, r, errs.E(errs.Invalid, "the --max-* flags must be positive")
	}
	return sandbox.Limits{Timeout: timeout, MemoryBytes: int64(mem), CPUs: cpus, MaxProcs: procs, WriteBytes: int64(wr)},
		int64(lg), sandbox.UIDRange{First: uint32(f), Count: uint32(c)}, nil
}
