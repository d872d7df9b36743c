package config

import (
	"time"

	"github.com/spf13/pflag"

	"github.com/afterlife-oss/afterlife/internal/errs"
)

// Builder is the configuration of `afterlife builder`, the builder
// operator's agent.
type Builder struct {
	Coordinator string // the coordinator's URL
	Token       string // the builder token
	Key         string // the ed25519 key file
	WitnessKey  string // the transparency log witness key file; "" means KEY.witness
	// WitnessEvery is how often the builder witnesses the log (0: never).
	WitnessEvery time.Duration
	Work         string // work and cache directory; "" means the user cache dir
	Name         string // the builder's name; "" means the host name
	LogLevel     string // debug, info, warn, error

	// This builder's maxima. A recipe asking for more time, memory or CPUs
	// is refused; processes, bytes written and the log are bounded by the
	// lower of the job's ceiling and these. Sizes and the uid range stay
	// text here: the builder reads them with the recipe format's grammar.
	MaxTimeout time.Duration
	MaxMemory  string
	MaxCPUs    int
	MaxProcs   int
	MaxWrite   string
	MaxLog     string
	JobUIDs    string // FIRST:COUNT
}

// The maxima's defaults are the recipe format's (recipes.DefaultMaxima)
// and the sandbox's uid range (sandbox.DefaultUIDs); cmd/afterlife's tests
// hold them equal, since this package imports no part.
var builderFields = []field[Builder]{
	{"coordinator", "", "coordinator URL, e.g. https://afterlife.example (required)", str(func(c *Builder) *string { return &c.Coordinator })},
	{"token", "", "builder token, bound to an operator by an admin (required)", str(func(c *Builder) *string { return &c.Token })},
	{"key", "", "ed25519 key file, mode 0600, from afterlife builder keygen (required)", str(func(c *Builder) *string { return &c.Key })},
	{"witness-key", "", "the builder's witness key for the transparency log (never its attestation key); made on first use; empty for KEY.witness", str(func(c *Builder) *string { return &c.WitnessKey })},
	{"witness-every", "30s", "how often the builder checks and cosigns the transparency log's newest checkpoint (0: never)", duration(func(c *Builder) *time.Duration { return &c.WitnessEvery })},
	{"work", "", "work and cache directory; empty for the user cache dir (~/.cache/afterlife/builder/NAME)", str(func(c *Builder) *string { return &c.Work })},
	{"name", "", "builder name; empty for the host name", str(func(c *Builder) *string { return &c.Name })},
	{"log-level", "info", "debug, info, warn or error", str(func(c *Builder) *string { return &c.LogLevel })},
	{"max-timeout", "2h", "longest build this builder runs; a recipe asking for more is refused", duration(func(c *Builder) *time.Duration { return &c.MaxTimeout })},
	{"max-memory", "8GiB", "most memory one build may use (memory cgroup); a recipe asking for more is refused", str(func(c *Builder) *string { return &c.MaxMemory })},
	{"max-cpus", "8", "most CPUs one build may ask for; a recipe asking for more is refused (a build is pinned to the CPUs it asks for)", integer(func(c *Builder) *int { return &c.MaxCPUs })},
	{"max-procs", "1024", "most processes and threads one build may run (pids cgroup, RLIMIT_NPROC)", integer(func(c *Builder) *int { return &c.MaxProcs })},
	{"max-write", "8GiB", "most bytes one build may write to /build, /out and /tmp (tmpfs size)", str(func(c *Builder) *string { return &c.MaxWrite })},
	{"max-log", "16MiB", "largest build log; a longer one keeps its head and tail with a note", str(func(c *Builder) *string { return &c.MaxLog })},
	{"job-uids", "1500000000:65536", "FIRST:COUNT host uids no account uses; as root, each job runs under one of its own", str(func(c *Builder) *string { return &c.JobUIDs })},
}

// builderSet names the builder's variables AFTERLIFE_BUILDER_*, except the
// coordinator's, which keeps the name it always had.
var builderSet = settingSet[Builder]{
	envPrefix: "AFTERLIFE_BUILDER_",
	fields:    builderFields,
	env:       map[string]string{"coordinator": "AFTERLIFE_COORDINATOR"},
	types:     map[string]string{"max-memory": "size", "max-write": "size", "max-log": "size", "job-uids": "string"},
}

// AddBuilderFlags declares every builder setting on fs, with its
// environment variable and YAML key in the help text, plus --config.
func AddBuilderFlags(fs *pflag.FlagSet) { builderSet.addFlags(fs) }

// LoadBuilder resolves the builder's settings: defaults < YAML file <
// environment < flags that were given. getenv is os.Getenv outside tests.
func LoadBuilder(fs *pflag.FlagSet, getenv func(string) string) (Builder, error) {
	c, err := builderSet.load(fs, getenv)
	if err != nil {
		return Builder{}, err
	}
	return c, c.validate()
}

func (c *Builder) validate() error {
	if c.Coordinator == "" || c.Token == "" || c.Key == "" {
		return errs.E(errs.Invalid, "--coordinator, --token and --key are required (or %s, %s, %s, or the --config file)",
			builderSet.envName("coordinator"), builderSet.envName("token"), builderSet.envName("key"))
	}
	if c.WitnessKey == "" {
		c.WitnessKey = c.Key + ".witness"
	}
	if c.WitnessEvery < 0 {
		return errs.E(errs.Invalid, "setting witness-every: must not be negative")
	}
	return nil
}
