// Package config is afterlife's one configuration struct and how it is
// loaded: built-in defaults, then an optional YAML file, then AFTERLIFE_*
// environment variables, then command-line flags, each overriding the one
// before. cmd/afterlife loads it once and passes the values down; nothing
// else reads flags, files or the environment for settings.
package config

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"gopkg.in/yaml.v3"

	"github.com/afterlife-oss/afterlife/internal/errs"
)

// Version is the version of the YAML file format this build reads.
const Version = 1

// Serve is the configuration of `afterlife serve`.
type Serve struct {
	Addr      string // listen address
	Data      string // data directory: SQLite file, blobs, keys, admin token
	Database  string // "" (SQLite under Data) or postgres://…
	Blobs     string // "" (Data/blobs) or s3://BUCKET?endpoint=HOST:PORT&…
	Keys      string // key directory; "" means Data/keys
	PublicURL string // how clients reach this server; "" means http://Addr
	ReplicaID string // names this replica in leases; "" means hostname-pid

	MetricsAddr      string // serve /metrics here only, not on Addr; "" means on Addr
	MetricsTokenFile string // when set, /metrics needs this file's token as a bearer token
	ProfileAddr      string // serve Go's runtime profiles (/debug/pprof/) here; "" means nowhere

	LogLevel  string // debug, info, warn, error
	LogFormat string // text or json

	Demo            bool   // seed the demo story into an empty data dir
	AllowLocalRepos bool   // accept file:// and local-path recipe repositories
	LocalBuilders   int    // builder agents started inside serve (embedded default: 2)
	BuilderCache    string // where local builders keep their caches; "" means DATA/builders
	Quorum          int    // builders of distinct operators that must agree

	LeaseTTL       time.Duration // how long a builder's job lease lasts without a heartbeat
	SchedulerEvery time.Duration // how often release policies are evaluated and the escrow outbox retried
	ScrubEvery     time.Duration // how often every blob is re-hashed (0: never)
	TranslogEvery  time.Duration // how often the transparency log appends new events
	TranslogQuorum int           // witnesses of distinct operators a served checkpoint needs
	TranslogInRoot bool          // publish the log's policy in the signed TUF root: devices then check the log
	// TranslogWitnesses are outside C2SP tlog-witness witnesses: entries
	// "OPERATOR VKEY URL" separated by ";".
	TranslogWitnesses string
	TimestampExpiry   time.Duration // lifetime of TUF timestamp metadata
	FwupdEvery        time.Duration // how often the fwupd remote is rebuilt, and the least time between its generations (0: no fwupd remote)
	EndingSoon        time.Duration // how close to the end of security support a product without a deposit is flagged

	MaxFileSize    int64         // largest single file in a deposit
	MaxDepositSize int64         // largest deposit
	Retention      time.Duration // S3 object-lock retention of sealed blobs (0: none)

	// The most one build may ask for or use, server-wide: a recipe asking
	// for more time, memory or CPUs is refused at submission; processes,
	// bytes written and log size bound every job the farm hands out.
	MaxBuildTimeout time.Duration
	MaxBuildMemory  int64
	MaxBuildCPUs    int
	MaxBuildProcs   int
	MaxBuildWrite   int64
	MaxBuildLog     int64

	ShutdownGrace     time.Duration // how long in-flight requests may take on SIGTERM
	BootstrapTokenTTL time.Duration // lifetime of the database's bootstrap admin token (0: never expires)
	MaxUpdateLoad     int           // concurrent update checks before answering 503
	ReportsPerHour    int           // install reports accepted per source network (/24, /48) per hour
	ReportsPerNetwork int           // reports of one outcome one source network counts for, per release
}

// field is one setting of a command whose configuration is C.
type field[C any] struct {
	name  string // flag name; the YAML key is name with - → _
	def   string
	usage string
	set   func(c *C, v string) error
}

// typeName is how --help names a field's value: bool, int, duration, size
// or string.
func (f field[C]) typeName() string {
	switch {
	case f.def == "true" || f.def == "false":
		return "bool"
	case strings.HasSuffix(f.name, "-size"):
		return "size"
	case f.def == "0" || strings.HasSuffix(f.def, "s") || strings.HasSuffix(f.def, "h"):
		return "duration"
	case strings.Trim(f.def, "0123456789") == "" && f.def != "":
		return "int"
	}
	return "string"
}

// flagValue keeps a setting as text until LoadServe parses it, and names its
// type in --help.
type flagValue struct {
	text, typ string
}

func (v *flagValue) String() string     { return v.text }
func (v *flagValue) Set(s string) error { v.text = s; return nil }
func (v *flagValue) Type() string       { return v.typ }
func (v *flagValue) IsBoolFlag() bool   { return v.typ == "bool" }

func str[C any](p func(*C) *string) func(*C, string) error {
	return func(c *C, v string) error { *p(c) = v; return nil }
}

func integer[C any](p func(*C) *int) func(*C, string) error {
	return func(c *C, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("want a whole number, got %q", v)
		}
		*p(c) = n
		return nil
	}
}

func boolean[C any](p func(*C) *bool) func(*C, string) error {
	return func(c *C, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("want true or false, got %q", v)
		}
		*p(c) = b
		return nil
	}
}

func duration[C any](p func(*C) *time.Duration) func(*C, string) error {
	return func(c *C, v string) error {
		d, err := ParseDuration(v)
		if err != nil {
			return err
		}
		*p(c) = d
		return nil
	}
}

func size[C any](p func(*C) *int64) func(*C, string) error {
	return func(c *C, v string) error {
		n, err := ParseSize(v)
		if err != nil {
			return err
		}
		*p(c) = n
		return nil
	}
}

var serveFields = []field[Serve]{
	{"addr", "127.0.0.1:8080", "listen address", str(func(c *Serve) *string { return &c.Addr })},
	{"data", "./data", "data directory (SQLite database, blobs, keys, admin token)", str(func(c *Serve) *string { return &c.Data })},
	{"database", "", "database: empty for SQLite under --data, or postgres://USER@HOST:PORT/DB", str(func(c *Serve) *string { return &c.Database })},
	{"blobs", "", "blob store: empty for DATA/blobs, or s3://BUCKET?endpoint=HOST:PORT&secure=false (credentials from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY); add &public_url=https://HOST[:PORT] to redirect downloads to URLs presigned for that address, otherwise they stream through the server", str(func(c *Serve) *string { return &c.Blobs })},
	{"keys", "", "key directory (TUF, escrow, receipt keys); empty for DATA/keys", str(func(c *Serve) *string { return &c.Keys })},
	{"public-url", "", "URL clients use to reach this server; empty for http://ADDR", str(func(c *Serve) *string { return &c.PublicURL })},
	{"replica-id", "", "name of this replica in leases; empty for HOSTNAME-PID", str(func(c *Serve) *string { return &c.ReplicaID })},
	{"metrics-addr", "", "serve /metrics on this address only (e.g. 127.0.0.1:9090, a port the public never reaches) instead of on --addr; empty: /metrics is on --addr", str(func(c *Serve) *string { return &c.MetricsAddr })},
	{"metrics-token-file", "", "a file holding a token: /metrics then answers only \"Authorization: Bearer TOKEN\" (Prometheus: authorization.credentials_file); empty: /metrics is open", str(func(c *Serve) *string { return &c.MetricsTokenFile })},
	{"profile-addr", "", "serve Go's runtime profiles (CPU, heap, goroutines, blocking: /debug/pprof/) on this address only, e.g. 127.0.0.1:6060, a port the public never reaches; empty: not served", str(func(c *Serve) *string { return &c.ProfileAddr })},
	{"log-level", "info", "log level: debug, info, warn, error", str(func(c *Serve) *string { return &c.LogLevel })},
	{"log-format", "text", "log format: text or json", str(func(c *Serve) *string { return &c.LogFormat })},
	{"demo", "false", "seed the demo (vendor with a signing key, product, deposit with a handover statement, recipe, reproducible release) into an empty data dir; implies translog-in-root", boolean(func(c *Serve) *bool { return &c.Demo })},
	{"allow-local-repos", "false", "accept recipe repositories on this machine or its private networks (file:// URLs, paths, http://, loopback and private addresses): for tests and single-machine setups, never on a public server", boolean(func(c *Serve) *bool { return &c.AllowLocalRepos })},
	{"local-builders", "2", "builder agents to run inside this process (0 for none)", integer(func(c *Serve) *int { return &c.LocalBuilders })},
	{"builder-cache", "", "directory for the local builders' caches (Go build cache, fetched inputs); empty for DATA/builders", str(func(c *Serve) *string { return &c.BuilderCache })},
	{"quorum", "2", "builders of distinct operators that must agree for a reproducible verdict", integer(func(c *Serve) *int { return &c.Quorum })},
	{"lease-ttl", "60s", "job lease lifetime without a heartbeat", duration(func(c *Serve) *time.Duration { return &c.LeaseTTL })},
	{"scheduler-every", "30s", "how often release policies are evaluated and undelivered release notices retried", duration(func(c *Serve) *time.Duration { return &c.SchedulerEvery })},
	{"translog-every", "2s", "how often the transparency log appends the parts' new events and signs a checkpoint", duration(func(c *Serve) *time.Duration { return &c.TranslogEvery })},
	{"translog-quorum", "1", "witnesses of distinct operators that must cosign a checkpoint before /log/checkpoint serves it (builders witness; 0: the log's signature alone)", integer(func(c *Serve) *int { return &c.TranslogQuorum })},
	{"translog-in-root", "false", "publish the transparency log's key, witnesses and quorum in the signed TUF root (needs root.key in the key dir); devices then install only releases the witnessed log proves, and refuse one in the seconds before its publication is logged and cosigned", boolean(func(c *Serve) *bool { return &c.TranslogInRoot })},
	{"translog-witnesses", "", "outside witnesses (C2SP tlog-witness) the log pushes checkpoints to: \"OPERATOR VKEY URL\" entries separated by ';'", str(func(c *Serve) *string { return &c.TranslogWitnesses })},
	{"scrub-every", "24h", "how often every blob is re-hashed (0 to disable)", duration(func(c *Serve) *time.Duration { return &c.ScrubEvery })},
	{"ending-soon", "4320h", "products this close to their declared end of security support (4320h = 180 days) with nothing in escrow are listed on the admin page and flagged on their vendor's page, never publicly", duration(func(c *Serve) *time.Duration { return &c.EndingSoon })},
	{"timestamp-expiry", "24h", "lifetime of the TUF timestamp; it is re-signed before it expires", duration(func(c *Serve) *time.Duration { return &c.TimestampExpiry })},
	{"fwupd-every", "1m", "how often the fwupd remote's metadata is rebuilt from the releases; two generations are at least this far apart (0: serve no fwupd remote)", duration(func(c *Serve) *time.Duration { return &c.FwupdEvery })},
	{"max-file-size", "4GiB", "largest file in a deposit", size(func(c *Serve) *int64 { return &c.MaxFileSize })},
	{"max-deposit-size", "32GiB", "largest deposit", size(func(c *Serve) *int64 { return &c.MaxDepositSize })},
	{"retention", "0", "S3 object-lock retention for sealed blobs, e.g. 8760h (0: none)", duration(func(c *Serve) *time.Duration { return &c.Retention })},
	{"max-build-timeout", "2h", "longest build a recipe may ask for (limits.timeout); more is refused at submission", duration(func(c *Serve) *time.Duration { return &c.MaxBuildTimeout })},
	{"max-build-memory", "8GiB", "most memory a recipe may ask for (limits.memory); more is refused at submission", size(func(c *Serve) *int64 { return &c.MaxBuildMemory })},
	{"max-build-cpus", "8", "most CPUs a recipe may ask for (limits.cpus); more is refused at submission", integer(func(c *Serve) *int { return &c.MaxBuildCPUs })},
	{"max-build-procs", "1024", "most processes and threads one build may run at once", integer(func(c *Serve) *int { return &c.MaxBuildProcs })},
	{"max-build-write", "8GiB", "most bytes one build may write (/build, /out, /tmp: a size-limited tmpfs on the builder)", size(func(c *Serve) *int64 { return &c.MaxBuildWrite })},
	{"max-build-log", "16MiB", "largest build log kept; a longer one keeps its head and tail with a note of what was cut", size(func(c *Serve) *int64 { return &c.MaxBuildLog })},
	{"bootstrap-token-ttl", "24h", "lifetime of the bootstrap admin token that the replica initialising a database writes to DATA/admin.token (0: never expires); make lasting admin tokens with it", duration(func(c *Serve) *time.Duration { return &c.BootstrapTokenTTL })},
	{"shutdown-grace", "20s", "time in-flight requests get to finish on SIGTERM", duration(func(c *Serve) *time.Duration { return &c.ShutdownGrace })},
	{"max-update-load", "512", "concurrent device update checks before answering 503 + Retry-After; 0 answers every check so (a replica that serves no devices)", integer(func(c *Serve) *int { return &c.MaxUpdateLoad })},
	{"reports-per-hour", "120", "install reports accepted per source network (IPv4 /24, IPv6 /48) per hour", integer(func(c *Serve) *int { return &c.ReportsPerHour })},
	{"reports-per-network", "5", "install reports of one outcome that one source network counts for, per release", integer(func(c *Serve) *int { return &c.ReportsPerNetwork })},
}

// EnvName is the environment variable of a serve flag.
func EnvName(flag string) string {
	return serveSet.envName(flag)
}

func yamlKey(flag string) string { return strings.ReplaceAll(flag, "-", "_") }

// settingSet is the settings of one command: its fields and the prefix of
// their environment variables.
type settingSet[C any] struct {
	envPrefix string // AFTERLIFE_, AFTERLIFE_BUILDER_
	fields    []field[C]
	env       map[string]string // flag → its environment variable, where not envPrefix + NAME
	types     map[string]string // flag → how --help names its value, where typeName cannot tell
}

func (s settingSet[C]) typeName(f field[C]) string {
	if t, ok := s.types[f.name]; ok {
		return t
	}
	return f.typeName()
}

var serveSet = settingSet[Serve]{envPrefix: "AFTERLIFE_", fields: serveFields}

func (s settingSet[C]) envName(flag string) string {
	if e, ok := s.env[flag]; ok {
		return e
	}
	return s.envPrefix + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// AddServeFlags declares every serve setting on fs, with its environment
// variable and YAML key in the help text, plus --config.
func AddServeFlags(fs *pflag.FlagSet) { serveSet.addFlags(fs) }

func (s settingSet[C]) addFlags(fs *pflag.FlagSet) {
	fs.String("config", "", "YAML configuration file (env "+s.envName("config")+")")
	for _, f := range s.fields {
		v := &flagValue{text: f.def, typ: s.typeName(f)}
		fl := fs.VarPF(v, f.name, "", fmt.Sprintf("%s (env %s, yaml %s)", f.usage, s.envName(f.name), yamlKey(f.name)))
		if v.typ == "bool" {
			fl.NoOptDefVal = "true"
		}
	}
}

// LoadServe resolves the settings: defaults < YAML file < environment <
// flags that were given. getenv is os.Getenv outside tests.
func LoadServe(fs *pflag.FlagSet, getenv func(string) string) (Serve, error) {
	c, err := serveSet.load(fs, getenv)
	if err != nil {
		return Serve{}, err
	}
	return c, c.validate()
}

func (s settingSet[C]) load(fs *pflag.FlagSet, getenv func(string) string) (C, error) {
	var c C
	values := map[string]string{}
	for _, f := range s.fields {
		values[f.name] = f.def
	}
	path := getenv(s.envName("config"))
	if fl := fs.Lookup("config"); fl != nil && fl.Changed {
		path = fl.Value.String()
	}
	if path != "" {
		fromFile, err := s.readYAML(path)
		if err != nil {
			return c, err
		}
		for k, v := range fromFile {
			values[k] = v
		}
	}
	for _, f := range s.fields {
		if v, ok := lookupEnv(getenv, s.envName(f.name)); ok {
			values[f.name] = v
		}
		if fl := fs.Lookup(f.name); fl != nil && fl.Changed {
			values[f.name] = fl.Value.String()
		}
	}
	for _, f := range s.fields {
		if err := f.set(&c, values[f.name]); err != nil {
			return c, errs.E(errs.Invalid, "setting %s: %v", f.name, err)
		}
	}
	return c, nil
}

func lookupEnv(getenv func(string) string, name string) (string, bool) {
	v := getenv(name)
	return v, v != ""
}

func (s settingSet[C]) readYAML(path string) (map[string]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, errs.Wrap(errs.Invalid, err, "config file %s", path)
	}
	var raw map[string]yaml.Node
	if err := yaml.Unmarshal(data, &raw); err != nil {
		return nil, errs.Wrap(errs.Invalid, err, "config file %s", path)
	}
	known := map[string]string{}
	for _, f := range s.fields {
		known[yamlKey(f.name)] = f.name
	}
	out := map[string]string{}
	version := 0
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		n := raw[k]
		if n.Kind != yaml.ScalarNode {
			return nil, errs.E(errs.Invalid, "config file %s:%d: %s must be a single value", path, n.Line, k)
		}
		if k == "version" {
			version, _ = strconv.Atoi(n.Value)
			continue
		}
		name, ok := known[k]
		if !ok {
			return nil, errs.E(errs.Invalid, "config file %s:%d: unknown setting %q", path, n.Line, k)
		}
		out[name] = n.Value
	}
	if version != Version {
		return nil, errs.E(errs.Invalid, "config file %s: want \"version: %d\" (got %d)", path, Version, version)
	}
	return out, nil
}

func (c *Serve) validate() error {
	if c.Data == "" {
		return errs.E(errs.Invalid, "setting data: must not be empty")
	}
	abs, err := filepath.Abs(c.Data)
	if err != nil {
		return errs.Wrap(errs.Invalid, err, "setting data")
	}
	c.Data = abs
	// The demo tells the handover story: its device starts from the demo
	// vendor's key, which needs the log's policy in the root.
	if c.Demo {
		c.TranslogInRoot = true
	}
	if c.Keys == "" {
		c.Keys = filepath.Join(c.Data, "keys")
	}
	if c.Database != "" && !strings.HasPrefix(c.Database, "postgres://") && !strings.HasPrefix(c.Database, "postgresql://") && !strings.HasPrefix(c.Database, "sqlite:") {
		return errs.E(errs.Invalid, "setting database: want postgres://… or sqlite:PATH, got %q", c.Database)
	}
	if c.Blobs != "" && !strings.HasPrefix(c.Blobs, "s3://") {
		return errs.E(errs.Invalid, "setting blobs: want s3://BUCKET?endpoint=…, got %q", c.Blobs)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return errs.E(errs.Invalid, "setting log-level: want debug, info, warn or error, got %q", c.LogLevel)
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		return errs.E(errs.Invalid, "setting log-format: want text or json, got %q", c.LogFormat)
	}
	if c.Quorum < 1 {
		return errs.E(errs.Invalid, "setting quorum: must be at least 1")
	}
	if c.TranslogEvery <= 0 {
		return errs.E(errs.Invalid, "setting translog-every: must be positive")
	}
	if c.TranslogQuorum < 0 {
		return errs.E(errs.Invalid, "setting translog-quorum: must not be negative")
	}
	if _, err := c.OutsideWitnesses(); err != nil {
		return err
	}
	if c.MaxUpdateLoad < 0 {
		return errs.E(errs.Invalid, "setting max-update-load: must not be negative (0 serves no update checks)")
	}
	if c.LocalBuilders < 0 {
		return errs.E(errs.Invalid, "setting local-builders: must not be negative")
	}
	if c.BuilderCache == "" {
		c.BuilderCache = filepath.Join(c.Data, "builders")
	}
	if c.PublicURL == "" {
		c.PublicURL = "http://" + c.Addr
	}
	c.PublicURL = strings.TrimRight(c.PublicURL, "/")
	if c.ReplicaID == "" {
		host, _ := os.Hostname()
		c.ReplicaID = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	return nil
}

// DatabaseURL is the database to open: the configured one, or SQLite under
// the data directory.
func (c Serve) DatabaseURL() string {
	if c.Database != "" {
		return c.Database
	}
	return "sqlite:" + filepath.Join(c.Data, "afterlife.db")
}

// ParseDuration accepts Go durations plus a "d" suffix for days ("30d").
func ParseDuration(v string) (time.Duration, error) {
	if v == "0" {
		return 0, nil
	}
	if days, ok := strings.CutSuffix(v, "d"); ok {
		n, err := strconv.ParseFloat(days, 64)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("want a duration like 90s, 15m, 24h or 30d, got %q", v)
		}
		return time.Duration(n * 24 * float64(time.Hour)), nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("want a duration like 90s, 15m, 24h or 30d, got %q", v)
	}
	return d, nil
}

// ParseSize accepts a byte count with an optional unit: B, KiB, MiB, GiB,
// TiB (or KB, MB, GB, TB, meaning the same powers of 1024).
func ParseSize(v string) (int64, error) {
	s := strings.TrimSpace(v)
	units := []struct {
		suffix string
		mult   int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10},
		{"TB", 1 << 40}, {"GB", 1 << 30}, {"MB", 1 << 20}, {"KB", 1 << 10}, {"B", 1}}
	mult := int64(1)
	for _, u := range units {
		if rest, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = strings.TrimSpace(rest), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("want a size like 512MiB or 4GiB, got %q", v)
	}
	return n * mult, nil
}

// OutsideWitness is one entry of translog-witnesses.
type OutsideWitness struct {
	Operator, VerifierKey, URL string
}

// OutsideWitnesses parses translog-witnesses.
func (c Serve) OutsideWitnesses() ([]OutsideWitness, error) {
	var out []OutsideWitness
	for _, entry := range strings.Split(c.TranslogWitnesses, ";") {
		f := strings.Fields(entry)
		if len(f) == 0 {
			continue
		}
		if len(f) != 3 || (!strings.HasPrefix(f[2], "https://") && !strings.HasPrefix(f[2], "http://")) {
			return nil, errs.E(errs.Invalid, "setting translog-witnesses: want \"OPERATOR VKEY URL\" entries separated by ';', got %q", strings.TrimSpace(entry))
		}
		out = append(out, OutsideWitness{Operator: f[0], VerifierKey: f[1], URL: f[2]})
	}
	return out, nil
}
