// Package tuf is the registry's TUF repository, the signing side: it owns
// the repository's keys (root apart from the online targets, snapshot and
// timestamp keys), builds and signs root, targets, hashed-bin delegations,
// snapshot and timestamp metadata with go-tuf, keeps them in a Store that
// the registry provides, and serves them over HTTP. It must not serve or
// store target files (the registry serves them from the blob store by
// digest, see ParseTargetRequest), know about products or releases beyond
// the path convention, or serialise mutations across replicas: callers hold
// a database lock around Apply, RefreshTimestamp and Rotate.
package tuf

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/relpath"
)

const (
	statePrefix = "state/"
	// BinPrefix names the hashed bins: "bins-00" … "bins-ff" with 8 bits.
	BinPrefix = "bins"
)

// Options tune a repository. The zero value gives the defaults.
type Options struct {
	// Now is the clock (default time.Now).
	Now func() time.Time
	// RootExpiry (default 1 year), TargetsExpiry for targets and bins
	// (default 1 year), SnapshotExpiry (default 7 days) and
	// TimestampExpiry (default 1 day) are how long a freshly signed file
	// stays valid.
	RootExpiry, TargetsExpiry, SnapshotExpiry, TimestampExpiry time.Duration
	// BinBits sets the number of hashed bins to 2^BinBits (default 8: 256
	// bins). It is fixed when the repository is created; later values are
	// ignored.
	BinBits int
	// Logger receives one line per publication (default: discard).
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.Now == nil {
		o.Now = time.Now
	}
	year := 365 * 24 * time.Hour
	if o.RootExpiry <= 0 {
		o.RootExpiry = year
	}
	if o.TargetsExpiry <= 0 {
		o.TargetsExpiry = year
	}
	if o.SnapshotExpiry <= 0 {
		o.SnapshotExpiry = 7 * 24 * time.Hour
	}
	if o.TimestampExpiry <= 0 {
		o.TimestampExpiry = 24 * time.Hour
	}
	if o.BinBits <= 0 || o.BinBits > 16 {
		o.BinBits = 8
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// onlineRoles are the roles whose keys the server keeps at hand.
var onlineRoles = []string{metadata.TARGETS, metadata.SNAPSHOT, metadata.TIMESTAMP}

// Repo is a TUF repository. Its methods are safe for concurrent use within
// one process; across replicas the caller serialises mutations.
type Repo struct {
	store  Store
	keyDir string
	o      Options

	mu   sync.Mutex
	keys map[string]*roleKey // online keys, checked against root before each use
}

// Target is one file listed in the signed metadata.
type Target struct {
	Path   string         // "<product>/<version>/<file>"
	Length int64          // bytes
	SHA256 string         // lower-case hex
	Custom map[string]any // extra signed fields, e.g. channel or release id
}

// Open opens the repository kept in store, signing with the keys in keyDir.
// On first start it generates the keys and publishes version 1 of every
// role; afterwards it loads, and needs only the online keys (root.key may
// be kept offline once root.json exists).
func Open(ctx context.Context, store Store, keyDir string, now func() time.Time) (*Repo, error) {
	return OpenWith(ctx, store, keyDir, Options{Now: now})
}

// OpenWith is Open with options.
func OpenWith(ctx context.Context, store Store, keyDir string, o Options) (*Repo, error) {
	r := &Repo{store: store, keyDir: keyDir, o: o.withDefaults(), keys: map[string]*roleKey{}}
	if err := os.MkdirAll(keyDir, 0o700); err != nil {
		return nil, fmt.Errorf("tuf: create key dir: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	_, err := store.GetMeta(ctx, "timestamp.json")
	switch {
	case errs.Is(err, errs.NotFound):
		if err := r.initialise(ctx); err != nil {
			return nil, err
		}
		r.warnSingleKey(ctx)
		return r, nil
	case err != nil:
		return nil, fmt.Errorf("tuf: open: %w", err)
	}
	st, err := r.load(ctx)
	if err != nil {
		return nil, err
	}
	for _, role := range metadata.TOP_LEVEL_ROLE_NAMES {
		if err := settleRotation(keyDir, role, listedIn(st.root, role)); err != nil {
			return nil, err
		}
		if err := settleProposed(keyDir, role, st.root); err != nil {
			return nil, err
		}
	}
	if err := r.syncKeys(st); err != nil {
		return nil, err
	}
	r.warnSingleKey(ctx)
	return r, nil
}

// warnSingleKey says loudly, once per start, that one key the server holds
// can replace the whole root: fine for trying things out, not a registry
// that must outlive its operator.
func (r *Repo) warnSingleKey(ctx context.Context) {
	c, err := r.Custody(ctx)
	if err != nil || !c.SingleKey() {
		return
	}
	r.o.Logger.Warn("TUF ROOT HELD BY ONE KEY ON THIS SERVER: whoever holds root.key can replace every key devices trust, and nobody can carry the registry on without it; move to a threshold of custodians' offline keys (docs/tuf.md, \"A root held by custodians\")",
		"root_version", c.Version, "root_key", filepath.Join(r.keyDir, metadata.ROOT+".key"))
}

// state is the repository as the store holds it now.
type state struct {
	root      *metadata.Metadata[metadata.RootType]
	timestamp *metadata.Metadata[metadata.TimestampType]
	snapshot  *metadata.Metadata[metadata.SnapshotType]
	targets   *metadata.Metadata[metadata.TargetsType]
}

func getMeta[T metadata.Roles](ctx context.Context, s Store, name string) (*metadata.Metadata[T], error) {
	b, err := s.GetMeta(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("tuf: load %s: %w", name, err)
	}
	m, err := (&metadata.Metadata[T]{}).FromBytes(b)
	if err != nil {
		return nil, errs.Wrap(errs.Internal, err, "tuf: parse %s", name)
	}
	return m, nil
}

// load reads the current root, timestamp, snapshot and targets. Every
// mutation starts here, so a replica never signs on top of stale state.
func (r *Repo) load(ctx context.Context) (*state, error) {
	var st state
	var err error
	if st.root, err = getMeta[metadata.RootType](ctx, r.store, "root.json"); err != nil {
		return nil, err
	}
	if st.timestamp, err = getMeta[metadata.TimestampType](ctx, r.store, "timestamp.json"); err != nil {
		return nil, err
	}
	sv, ok := st.timestamp.Signed.Meta["snapshot.json"]
	if !ok {
		return nil, errs.E(errs.Internal, "tuf: timestamp lists no snapshot")
	}
	if st.snapshot, err = getMeta[metadata.SnapshotType](ctx, r.store, fmt.Sprintf("%d.snapshot.json", sv.Version)); err != nil {
		return nil, err
	}
	tv, ok := st.snapshot.Signed.Meta["targets.json"]
	if !ok {
		return nil, errs.E(errs.Internal, "tuf: snapshot lists no targets")
	}
	if st.targets, err = getMeta[metadata.TargetsType](ctx, r.store, fmt.Sprintf("%d.targets.json", tv.Version)); err != nil {
		return nil, err
	}
	if d := st.targets.Signed.Delegations; d == nil || d.SuccinctRoles == nil {
		return nil, errs.E(errs.Internal, "tuf: targets has no hashed-bin delegation")
	}
	return &st, nil
}

// loadBin reads the current version of one hashed bin.
func (r *Repo) loadBin(ctx context.Context, st *state, bin string) (*metadata.Metadata[metadata.TargetsType], error) {
	mf, ok := st.snapshot.Signed.Meta[bin+".json"]
	if !ok {
		return nil, errs.E(errs.Internal, "tuf: snapshot lists no %s", bin)
	}
	return getMeta[metadata.TargetsType](ctx, r.store, fmt.Sprintf("%d.%s.json", mf.Version, bin))
}

func listedIn(root *metadata.Metadata[metadata.RootType], role string) func(string) bool {
	return func(id string) bool {
		rl, ok := root.Signed.Roles[role]
		return ok && slices.Contains(rl.KeyIDs, id)
	}
}

// syncKeys makes sure the online keys in memory are the ones root trusts;
// after another replica rotated a key it re-reads the key dir.
func (r *Repo) syncKeys(st *state) error {
	for _, role := range onlineRoles {
		listed := listedIn(st.root, role)
		if k := r.keys[role]; k != nil && listed(k.id) {
			continue
		}
		if err := settleRotation(r.keyDir, role, listed); err != nil {
			return err
		}
		if err := settleProposed(r.keyDir, role, st.root); err != nil {
			return err
		}
		k, err := readKey(keyPath(r.keyDir, role))
		if err != nil {
			return fmt.Errorf("tuf: the repository exists but its %s key cannot be loaded: %w", role, err)
		}
		if !listed(k.id) {
			return errs.E(errs.Internal, "tuf: %s.key in the key dir is not the key root trusts for %s (copy the key dir from the replica that rotated it)", role, role)
		}
		r.keys[role] = k
	}
	if sr := st.targets.Signed.Delegations.SuccinctRoles; !slices.Contains(sr.KeyIDs, r.keys[metadata.TARGETS].id) {
		return errs.E(errs.Internal, "tuf: the hashed bins are not delegated to the targets key")
	}
	return nil
}

func (r *Repo) expires(d time.Duration) time.Time {
	return r.o.Now().UTC().Add(d).Truncate(time.Second)
}

func signMeta[T metadata.Roles](m *metadata.Metadata[T], keys ...*roleKey) ([]byte, error) {
	m.ClearSignatures()
	for _, k := range keys {
		if _, err := m.Sign(k.signer); err != nil {
			return nil, fmt.Errorf("tuf: sign: %w", err)
		}
	}
	b, err := m.ToBytes(false)
	if err != nil {
		return nil, fmt.Errorf("tuf: encode: %w", err)
	}
	return b, nil
}

// initialise creates keys (keeping any already in the key dir) and
// publishes version 1 of every role.
func (r *Repo) initialise(ctx context.Context) error {
	keys := map[string]*roleKey{}
	for _, role := range metadata.TOP_LEVEL_ROLE_NAMES {
		_ = os.Remove(keyPath(r.keyDir, role) + ".new") // no root lists it
		k, err := readKey(keyPath(r.keyDir, role))
		if errs.Is(err, errs.NotFound) {
			if k, err = generateRoleKey(); err == nil {
				err = writeKey(keyPath(r.keyDir, role), k)
			}
		}
		if err != nil {
			return fmt.Errorf("tuf: initialise %s key: %w", role, err)
		}
		keys[role] = k
	}
	root := metadata.Root(r.expires(r.o.RootExpiry))
	root.Signed.ConsistentSnapshot = true
	for _, role := range metadata.TOP_LEVEL_ROLE_NAMES {
		if err := root.Signed.AddKey(keys[role].pub, role); err != nil {
			return fmt.Errorf("tuf: initialise root: %w", err)
		}
	}
	tk := keys[metadata.TARGETS]
	targets := metadata.Targets(r.expires(r.o.TargetsExpiry))
	targets.Signed.Delegations = &metadata.Delegations{
		Keys: map[string]*metadata.Key{tk.id: tk.pub},
		SuccinctRoles: &metadata.SuccinctRoles{
			KeyIDs: []string{tk.id}, Threshold: 1, BitLength: r.o.BinBits, NamePrefix: BinPrefix,
		},
	}
	// Version 0 so that commit publishes everything as version 1.
	targets.Signed.Version = 0
	st := &state{
		root:      root,
		targets:   targets,
		snapshot:  metadata.Snapshot(),
		timestamp: metadata.Timestamp(),
	}
	st.snapshot.Signed.Version, st.timestamp.Signed.Version = 0, 0
	bins := map[string]*metadata.Metadata[metadata.TargetsType]{}
	for _, name := range targets.Signed.Delegations.SuccinctRoles.GetRoles() {
		b := metadata.Targets()
		b.Signed.Version = 0
		bins[name] = b
	}
	r.keys = map[string]*roleKey{}
	for _, role := range onlineRoles {
		r.keys[role] = keys[role]
	}
	rootBytes, err := signMeta(root, keys[metadata.ROOT])
	if err != nil {
		return err
	}
	if err := r.store.PutMeta(ctx, "1.root.json", rootBytes); err != nil {
		return fmt.Errorf("tuf: initialise: %w", err)
	}
	if err := r.store.PutMeta(ctx, "root.json", rootBytes); err != nil {
		return fmt.Errorf("tuf: initialise: %w", err)
	}
	if err := r.commit(ctx, st, change{bins: bins, targets: true}); err != nil {
		return err
	}
	r.o.Logger.Info("tuf repository created", "bins", len(bins), "root_key", keys[metadata.ROOT].id)
	return nil
}

// change is what one publication re-signs. The timestamp is always
// re-signed and written last: it is the commit point that makes the new
// files visible to clients.
type change struct {
	bins     map[string]*metadata.Metadata[metadata.TargetsType]
	targets  bool
	snapshot bool
	root     *metadata.Metadata[metadata.RootType] // already signed
}

func (r *Repo) put(ctx context.Context, name string, data []byte) error {
	if err := r.store.PutMeta(ctx, name, data); err != nil {
		return fmt.Errorf("tuf: store %s: %w", name, err)
	}
	return nil
}

func (r *Repo) commit(ctx context.Context, st *state, ch change) error {
	tk := r.keys[metadata.TARGETS]
	names := make([]string, 0, len(ch.bins))
	for name := range ch.bins {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		b := ch.bins[name]
		b.Signed.Version++
		b.Signed.Expires = r.expires(r.o.TargetsExpiry)
		data, err := signMeta(b, tk)
		if err != nil {
			return err
		}
		if err := r.put(ctx, fmt.Sprintf("%d.%s.json", b.Signed.Version, name), data); err != nil {
			return err
		}
		st.snapshot.Signed.Meta[name+".json"] = metadata.MetaFile(b.Signed.Version)
	}
	if ch.targets {
		t := st.targets
		t.Signed.Version++
		t.Signed.Expires = r.expires(r.o.TargetsExpiry)
		data, err := signMeta(t, tk)
		if err != nil {
			return err
		}
		if err := r.put(ctx, fmt.Sprintf("%d.targets.json", t.Signed.Version), data); err != nil {
			return err
		}
		st.snapshot.Signed.Meta["targets.json"] = metadata.MetaFile(t.Signed.Version)
	}
	if len(ch.bins) > 0 || ch.targets || ch.snapshot {
		s := st.snapshot
		s.Signed.Version++
		s.Signed.Expires = r.expires(r.o.SnapshotExpiry)
		data, err := signMeta(s, r.keys[metadata.SNAPSHOT])
		if err != nil {
			return err
		}
		if err := r.put(ctx, fmt.Sprintf("%d.snapshot.json", s.Signed.Version), data); err != nil {
			return err
		}
		st.timestamp.Signed.Meta["snapshot.json"] = metadata.MetaFile(s.Signed.Version)
	}
	if ch.root != nil {
		data, err := ch.root.ToBytes(false)
		if err != nil {
			return fmt.Errorf("tuf: encode root: %w", err)
		}
		if err := r.put(ctx, fmt.Sprintf("%d.root.json", ch.root.Signed.Version), data); err != nil {
			return err
		}
		if err := r.put(ctx, "root.json", data); err != nil {
			return err
		}
	}
	ts := st.timestamp
	ts.Signed.Version++
	ts.Signed.Expires = r.expires(r.o.TimestampExpiry)
	data, err := signMeta(ts, r.keys[metadata.TIMESTAMP])
	if err != nil {
		return err
	}
	return r.put(ctx, "timestamp.json", data)
}

// Apply publishes one change of the target list (a publish, a promotion, a
// yank): it adds or replaces the targets in add, removes the paths in
// remove, re-signs only the hashed bins those paths fall in, then a new
// snapshot and timestamp. A path to remove that is not listed is
// errs.NotFound and nothing changes. Apply re-reads the current state from
// the Store first; across replicas the caller must hold a lock.
func (r *Repo) Apply(ctx context.Context, add []Target, remove []string) error {
	seen := map[string]bool{}
	files := make(map[string]*metadata.TargetFiles, len(add))
	for _, t := range add {
		tf, err := targetFile(t)
		if err != nil {
			return err
		}
		if seen[t.Path] {
			return errs.E(errs.Invalid, "target %s is listed twice", t.Path)
		}
		seen[t.Path] = true
		files[t.Path] = tf
	}
	for _, p := range remove {
		if relpath.Check(p) != nil {
			return errs.E(errs.Invalid, "target path %q is not valid", p)
		}
		if seen[p] {
			return errs.E(errs.Invalid, "target %s is both added and removed", p)
		}
		seen[p] = true
	}
	if len(seen) == 0 {
		return nil
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	st, err := r.load(ctx)
	if err != nil {
		return err
	}
	if err := r.syncKeys(st); err != nil {
		return err
	}
	sr := st.targets.Signed.Delegations.SuccinctRoles
	bins := map[string]*metadata.Metadata[metadata.TargetsType]{}
	binOf := func(path string) (*metadata.Metadata[metadata.TargetsType], error) {
		name := sr.GetRolesForTarget(path)[0].Name
		if b, ok := bins[name]; ok {
			return b, nil
		}
		b, err := r.loadBin(ctx, st, name)
		if err != nil {
			return nil, err
		}
		if b.Signed.Targets == nil {
			b.Signed.Targets = map[string]*metadata.TargetFiles{}
		}
		bins[name] = b
		return b, nil
	}
	for _, p := range remove {
		b, err := binOf(p)
		if err != nil {
			return err
		}
		if _, ok := b.Signed.Targets[p]; !ok {
			return errs.E(errs.NotFound, "target %s is not published", p)
		}
		delete(b.Signed.Targets, p)
	}
	for _, t := range add {
		b, err := binOf(t.Path)
		if err != nil {
			return err
		}
		b.Signed.Targets[t.Path] = files[t.Path]
	}
	if err := r.commit(ctx, st, change{bins: bins}); err != nil {
		return err
	}
	r.o.Logger.Info("tuf targets published", "added", len(add), "removed", len(remove), "bins", len(bins),
		"snapshot", st.snapshot.Signed.Version, "timestamp", st.timestamp.Signed.Version)
	return nil
}

// Listed returns the signed entries of the given target paths as the
// Store holds them now; paths that are not listed are absent from the
// map. It reads each hashed bin once.
func (r *Repo) Listed(ctx context.Context, paths []string) (map[string]Target, error) {
	st, err := r.load(ctx)
	if err != nil {
		return nil, err
	}
	sr := st.targets.Signed.Delegations.SuccinctRoles
	bins := map[string]*metadata.Metadata[metadata.TargetsType]{}
	out := make(map[string]Target, len(paths))
	for _, p := range paths {
		if relpath.Check(p) != nil {
			continue
		}
		name := sr.GetRolesForTarget(p)[0].Name
		b, ok := bins[name]
		if !ok {
			if b, err = r.loadBin(ctx, st, name); err != nil {
				return nil, err
			}
			bins[name] = b
		}
		tf, ok := b.Signed.Targets[p]
		if !ok {
			continue
		}
		t := Target{Path: p, Length: tf.Length, SHA256: hex.EncodeToString(tf.Hashes["sha256"])}
		if tf.Custom != nil {
			if err := json.Unmarshal(*tf.Custom, &t.Custom); err != nil {
				return nil, errs.Wrap(errs.Internal, err, "tuf: custom fields of %s", p)
			}
		}
		out[p] = t
	}
	return out, nil
}

func targetFile(t Target) (*metadata.TargetFiles, error) {
	if relpath.Check(t.Path) != nil {
		return nil, errs.E(errs.Invalid, "target path %q is not valid", t.Path)
	}
	if t.Length < 0 {
		return nil, errs.E(errs.Invalid, "target %s has a negative length", t.Path)
	}
	sum, err := hex.DecodeString(t.SHA256)
	if err != nil || len(sum) != 32 || t.SHA256 != strings.ToLower(t.SHA256) {
		return nil, errs.E(errs.Invalid, "target %s: sha256 %q is not 64 lower-case hex digits", t.Path, t.SHA256)
	}
	tf := &metadata.TargetFiles{Length: t.Length, Hashes: metadata.Hashes{"sha256": sum}, Path: t.Path}
	if len(t.Custom) > 0 {
		b, err := json.Marshal(t.Custom)
		if err != nil {
			return nil, errs.Wrap(errs.Invalid, err, "target %s: custom fields", t.Path)
		}
		raw := json.RawMessage(b)
		tf.Custom = &raw
	}
	return tf, nil
}

// RefreshTimestamp re-signs the timestamp, and the snapshot too, when
// either expires within the given duration; it reports whether it did.
// Run it periodically on one replica (under the same lock as Apply).
func (r *Repo) RefreshTimestamp(ctx context.Context, within time.Duration) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	st, err := r.load(ctx)
	if err != nil {
		return false, err
	}
	deadline := r.o.Now().Add(within)
	tsDue := !st.timestamp.Signed.Expires.After(deadline)
	snapDue := !st.snapshot.Signed.Expires.After(deadline)
	if !tsDue && !snapDue {
		return false, nil
	}
	if err := r.syncKeys(st); err != nil {
		return false, err
	}
	if err := r.commit(ctx, st, change{snapshot: snapDue}); err != nil {
		return false, err
	}
	r.o.Logger.Info("tuf timestamp refreshed", "snapshot_resigned", snapDue, "timestamp", st.timestamp.Signed.Version)
	return true, nil
}

// TargetPath is the target path convention: "<product>/<version>/<file>".
func (r *Repo) TargetPath(product, version, file string) string {
	return product + "/" + version + "/" + file
}

// ParseTargetRequest maps the path a client downloads a target from (with
// consistent snapshots "<dir>/<sha256hex>.<basename>", optionally under
// "/tuf/targets/") to the target's directory, digest and base name, so the
// registry can serve the blob with that digest. ok is false for anything
// else.
func ParseTargetRequest(p string) (dir, hash, name string, ok bool) {
	p = strings.TrimPrefix(p, "/tuf/targets/")
	p = strings.TrimPrefix(p, "/")
	base := p
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		dir, base = p[:i], p[i+1:]
	}
	hash, name, found := strings.Cut(base, ".")
	// The name after the hash is the target's last path element: "." or
	// ".." there would name its directory, or the parent. The target path
	// (not the request path, whose last element carries the hash) is
	// checked like every target path.
	target := name
	if dir != "" {
		target = dir + "/" + name
	}
	if !found || len(hash) != 64 || relpath.Check(target) != nil {
		return "", "", "", false
	}
	if _, err := hex.DecodeString(hash); err != nil || hash != strings.ToLower(hash) {
		return "", "", "", false
	}
	return dir, hash, name, true
}
