// Package agent is the builder agent: it registers with a coordinator,
// long-polls for jobs it can run, and for each job fetches the recipe
// source and inputs by digest (verifying each), runs the steps in the
// bubblewrap sandbox, hashes the outputs and returns them with the log, a
// buildinfo and an in-toto attestation signed with its ed25519 key, while
// heartbeating the job's lease. When its context ends it gives the current
// job back (or finishes it when only the upload is left).
//
// It talks to the coordinator only through builder.Coordinator, so it runs
// the same in-process and over HTTP. It must not decide verdicts, trust a
// blob it has not hashed, or import recipes: tar extraction is injected.
package agent

import (
	"crypto/ed25519"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/afterlife-oss/afterlife/builder"
	"github.com/afterlife-oss/afterlife/builder/keys"
	"github.com/afterlife-oss/afterlife/builder/sandbox"
	"github.com/afterlife-oss/afterlife/builder/toolchain"
	"github.com/afterlife-oss/afterlife/internal/errs"
)

// Options configure an agent.
type Options struct {
	Coordinator builder.Coordinator
	Key         ed25519.PrivateKey
	Name        string
	// WorkDir holds one directory per running job, removed afterwards.
	WorkDir string
	// CacheDir keeps verified blobs by digest (builds never see them) and
	// the warm build caches bound at /cache (GOCACHE): one per recipe
	// repository, toolchain and architecture, so a build can never read
	// what a build of another repository wrote. The cold witness gets an
	// empty /cache of its own instead.
	CacheDir string
	// Toolchains are what this machine really has (toolchain.Detect).
	Toolchains []toolchain.Toolchain
	// Extract unpacks a deterministic tar (recipes.Extract) into dir.
	Extract func(r io.Reader, dir string) error
	// Arch defaults to toolchain.Arch().
	Arch string
	// MaxLimits are this builder's maxima: a job asking for more time,
	// memory or CPUs is refused with a reason naming the limit; processes
	// and bytes written are the lower of the job's ceiling and this. Zero
	// fields do not bound.
	MaxLimits sandbox.Limits
	// MaxLogBytes caps the build log (head and tail with a note), with the
	// job's own ceiling when that is lower; zero: builder.DefaultMaxLogBytes.
	MaxLogBytes int64
	// UIDs is where jobs take their uid when the agent runs as root
	// (sandbox.DefaultUIDs when empty).
	UIDs sandbox.UIDRange
	// PollWait is how long one Next waits (default 30s).
	PollWait time.Duration
	// LogFlush is how often the live log is sent (default 1s).
	LogFlush time.Duration
	// Version is the agent's version, recorded in attestations.
	Version string
	Logger  *slog.Logger
	Now     func() time.Time
}

// Agent runs jobs for one builder identity.
type Agent struct {
	o     Options
	log   *slog.Logger
	me    builder.Builder
	blobs Blobs // the coordinator, or a local try's files
}

// New checks the options and returns an agent.
func New(o Options) (*Agent, error) {
	switch {
	case o.Coordinator == nil:
		return nil, errs.E(errs.Invalid, "agent: a coordinator is required")
	case len(o.Key) != ed25519.PrivateKeySize:
		return nil, errs.E(errs.Invalid, "agent: an ed25519 key is required")
	case o.Name == "":
		return nil, errs.E(errs.Invalid, "agent: a name is required")
	}
	a, err := newAgent(o)
	if err != nil {
		return nil, err
	}
	a.blobs = o.Coordinator
	return a, nil
}

// newAgent checks and completes what every agent needs, farm or local.
func newAgent(o Options) (*Agent, error) {
	switch {
	case o.WorkDir == "" || o.CacheDir == "":
		return nil, errs.E(errs.Invalid, "agent: work and cache directories are required")
	case o.Extract == nil:
		return nil, errs.E(errs.Invalid, "agent: an archive extractor is required")
	case len(o.Toolchains) == 0:
		return nil, errs.E(errs.Invalid, "agent: no toolchains (run toolchain.Detect)")
	}
	for _, d := range []*string{&o.WorkDir, &o.CacheDir} {
		abs, err := filepath.Abs(*d)
		if err != nil {
			return nil, fmt.Errorf("agent: %s: %w", *d, err)
		}
		*d = abs
	}
	if o.Arch == "" {
		o.Arch = toolchain.Arch()
	}
	if o.PollWait <= 0 {
		o.PollWait = 30 * time.Second
	}
	if o.LogFlush <= 0 {
		o.LogFlush = time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxLogBytes <= 0 {
		o.MaxLogBytes = builder.DefaultMaxLogBytes
	}
	// Earlier agents kept one /cache for every build in "sandbox": any
	// recipe could have poisoned it, so it is thrown away, never reused.
	if err := os.RemoveAll(filepath.Join(o.CacheDir, "sandbox")); err != nil {
		return nil, fmt.Errorf("agent: remove the old shared build cache: %w", err)
	}
	for _, d := range []string{o.WorkDir, filepath.Join(o.CacheDir, "blobs"), filepath.Join(o.CacheDir, "builds")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("agent: create %s: %w", d, err)
		}
	}
	// Workspaces of jobs an earlier run of this agent did not finish hold
	// memory (a tmpfs each) until removed.
	left, err := os.ReadDir(o.WorkDir)
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	for _, e := range left {
		if e.IsDir() && strings.HasPrefix(e.Name(), "job") {
			if err := sandbox.RemoveWorkspace(filepath.Join(o.WorkDir, e.Name())); err != nil {
				return nil, err
			}
		}
	}
	return &Agent{o: o, log: o.Logger.With("builder", o.Name)}, nil
}

// Registration is what the agent tells the coordinator about itself.
func (a *Agent) Registration() builder.Registration {
	reg := builder.Registration{
		Protocol: builder.ProtocolVersion, Name: a.o.Name, Arch: a.o.Arch, AgentVersion: a.o.Version,
		PublicKey: keys.PublicKeyString(a.o.Key.Public().(ed25519.PublicKey)),
	}
	for _, tc := range a.o.Toolchains {
		reg.Toolchains = append(reg.Toolchains, builder.ToolchainInfo{Name: tc.Name, Version: tc.Version})
	}
	return reg
}
