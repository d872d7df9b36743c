// Package seed starts a new registry from a verified mirror of another
// (re-homing, docs/mirror.md "Taking a registry over"): a community
// carries a registry on when its operator vanished. It verifies the mirror
// from a pinned root before it reads anything else; it writes only
// through the new registry's own stores and parts (the TUF metadata store,
// the blob store, the catalog's and the registry's import), never their
// tables.
//
// Two steps, with the root's custodians between them: Propose makes the
// new server's online keys and the root version that lists them, which
// the custodians sign offline (afterlife admin root sign); AdoptTUF copies
// the repository and its targets and publishes that root, which re-signs
// everything with the new keys; Records then imports products and
// releases through the wired parts.
package seed

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/afterlife-oss/afterlife/internal/blob"
	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/registry"
	"github.com/afterlife-oss/afterlife/registry/catalog"
	"github.com/afterlife-oss/afterlife/registry/device"
	"github.com/afterlife-oss/afterlife/registry/mirror"
	"github.com/afterlife-oss/afterlife/registry/translog/verify"
	"github.com/afterlife-oss/afterlife/registry/tuf"
)

// Actor is who the new registry's logs name for what the import did.
const Actor = "rehome"

// verified checks the mirror offline from the pinned root and refuses it
// unless every file verifies, naming the first failures.
func verified(ctx context.Context, dir string, pinned []byte, now time.Time) (*mirror.Report, error) {
	rep, err := mirror.Verify(ctx, dir, pinned, now)
	if err != nil {
		return nil, err
	}
	if !rep.OK() {
		var names []string
		for i, f := range rep.Failures {
			if i == 5 {
				names = append(names, fmt.Sprintf("and %d more", len(rep.Failures)-5))
				break
			}
			names = append(names, f.File+": "+f.Reason)
		}
		return rep, errs.E(errs.Invalid, "seed: the mirror %s does not verify against the given root (%s); run afterlife mirror verify for every failure",
			dir, strings.Join(names, "; "))
	}
	// An expired timestamp is expected (the origin stopped re-signing
	// it): the adopted repository re-signs every role with a new expiry.
	return rep, nil
}

// Propose verifies the mirror in dir from the pinned root and returns the
// next root version after the mirror's newest, listing new online keys
// this server keeps in keyDir (tuf.ProposeRehome), unsigned, for the
// root's custodians to sign. When the mirrored root asks devices to check
// the transparency log (its afterlife_log field), the proposal names the
// new server's log instead, as newLog gives it: the old log's key left
// with its operator.
func Propose(ctx context.Context, dir string, pinned []byte, keyDir string, now time.Time, newLog func() (verify.Policy, error)) ([]byte, error) {
	rep, err := verified(ctx, dir, pinned, now)
	if err != nil {
		return nil, err
	}
	if _, err := heldProducts(dir, rep.Signed); err != nil {
		return nil, err
	}
	rels, err := mirroredReleases(dir)
	if err != nil {
		return nil, err
	}
	if _, err := heldBuilds(ctx, dir, rels); err != nil {
		return nil, err
	}
	cur, err := os.ReadFile(filepath.Join(dir, mirror.TUFDir, "root.json"))
	if err != nil {
		return nil, fmt.Errorf("seed: %w", err)
	}
	root, err := (&metadata.Metadata[metadata.RootType]{}).FromBytes(cur)
	if err != nil {
		return nil, errs.Wrap(errs.Invalid, err, "seed: %s/root.json", mirror.TUFDir)
	}
	var fields map[string]any
	if _, ok := root.Signed.UnrecognizedFields[device.LogPolicyField]; ok {
		pol, err := newLog()
		if err != nil {
			return nil, err
		}
		fields = map[string]any{device.LogPolicyField: pol}
	}
	return tuf.ProposeRehome(cur, keyDir, now.Add(365*24*time.Hour), fields)
}

// TUFOptions are what AdoptTUF copies into.
type TUFOptions struct {
	Dir    string    // the mirror
	Root   []byte    // the pinned root it is verified from
	Signed []byte    // the custodians' signed root from Propose's proposal
	Store  tuf.Store // the new registry's TUF metadata, empty
	Blobs  blob.Store
	KeyDir string // the new registry's TUF key directory, where Propose left its keys
	Now    func() time.Time
	Logger *slog.Logger
}

// Result says what an import did.
type Result struct {
	RootVersion int64 `json:"root_version"` // the custodians' root, now current
	Metadata    int   `json:"metadata"`     // TUF files copied
	Targets     int   `json:"targets"`      // target files stored
	Products    int   `json:"products"`
	Releases    int   `json:"releases"`
	Builds      int   `json:"builds"`
	// Signed are the targets the verified mirror signs, for Records.
	Signed map[string]mirror.SignedTarget `json:"-"`
}

var consistentName = regexp.MustCompile(`^[0-9]+\.[a-z0-9-]+\.json$`)

// AdoptTUF verifies the mirror, copies its TUF repository (every root
// version, the current timestamp and what it names) into an empty store,
// its targets into the blob store, and publishes the custodians' signed
// root, re-signing everything with this server's online keys.
func AdoptTUF(ctx context.Context, o TUFOptions) (Result, error) {
	var res Result
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	rep, err := verified(ctx, o.Dir, o.Root, o.Now())
	if err != nil {
		return res, err
	}
	// The products are held to the signed documents before anything is
	// written, as Records will import them.
	if _, err := heldProducts(o.Dir, rep.Signed); err != nil {
		return res, err
	}
	rels, err := mirroredReleases(o.Dir)
	if err != nil {
		return res, err
	}
	if _, err := heldBuilds(ctx, o.Dir, rels); err != nil {
		return res, err
	}
	res.Signed = rep.Signed
	if _, err := o.Store.GetMeta(ctx, "timestamp.json"); err == nil {
		return res, errs.E(errs.Conflict, "seed: this registry holds TUF metadata already: a registry is seeded from a mirror only before its first start, on a new database")
	} else if !errs.Is(err, errs.NotFound) {
		return res, err
	}
	// The custodians' root is checked before anything is written, so a
	// root short of signatures leaves the new database as it was.
	cur, err := os.ReadFile(filepath.Join(o.Dir, mirror.TUFDir, "root.json"))
	if err != nil {
		return res, fmt.Errorf("seed: %w", err)
	}
	if err := tuf.CheckAdoptable(cur, o.Signed, o.KeyDir, o.Now()); err != nil {
		return res, err
	}
	names, err := metadataFiles(o.Dir)
	if err != nil {
		return res, err
	}
	// Everything the timestamp names first, the pointers last, as a
	// publication writes them.
	for _, name := range names {
		b, err := os.ReadFile(filepath.Join(o.Dir, mirror.TUFDir, name))
		if err != nil {
			return res, fmt.Errorf("seed: %w", err)
		}
		if err := o.Store.PutMeta(ctx, name, b); err != nil {
			return res, fmt.Errorf("seed: store %s: %w", name, err)
		}
		res.Metadata++
	}
	targets := filepath.Join(o.Dir, mirror.TUFDir, "targets")
	err = filepath.WalkDir(targets, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		sum, _, ok := strings.Cut(d.Name(), ".")
		if !ok || len(sum) != 64 || strings.HasSuffix(d.Name(), ".part") || strings.HasSuffix(d.Name(), ".tmp") {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		if _, err := o.Blobs.Put(ctx, f, blob.Digest("sha256:"+sum)); err != nil {
			return fmt.Errorf("seed: store target %s: %w", p, err)
		}
		res.Targets++
		return nil
	})
	if err != nil {
		return res, err
	}
	repo, err := tuf.Adopt(ctx, o.Store, o.KeyDir, o.Signed, tuf.Options{Now: o.Now, Logger: o.Logger})
	if err != nil {
		return res, err
	}
	c, err := repo.Custody(ctx)
	if err != nil {
		return res, err
	}
	res.RootVersion = c.Version
	return res, nil
}

// metadataFiles lists the TUF files of the mirror a registry needs, in
// the order to store them: every root version, the versions of snapshot,
// targets and bins the timestamp names, then root.json and timestamp.json.
func metadataFiles(dir string) ([]string, error) {
	read := func(name string) ([]byte, error) {
		b, err := os.ReadFile(filepath.Join(dir, mirror.TUFDir, name))
		if err != nil {
			return nil, fmt.Errorf("seed: %w", err)
		}
		return b, nil
	}
	entries, err := os.ReadDir(filepath.Join(dir, mirror.TUFDir))
	if err != nil {
		return nil, fmt.Errorf("seed: %w", err)
	}
	var out []string
	for _, e := range entries {
		if e.Type().IsRegular() && strings.HasSuffix(e.Name(), ".root.json") && consistentName.MatchString(e.Name()) {
			out = append(out, e.Name())
		}
	}
	b, err := read("timestamp.json")
	if err != nil {
		return nil, err
	}
	ts, err := (&metadata.Metadata[metadata.TimestampType]{}).FromBytes(b)
	if err != nil {
		return nil, errs.Wrap(errs.Invalid, err, "seed: timestamp.json")
	}
	sm, ok := ts.Signed.Meta["snapshot.json"]
	if !ok {
		return nil, errs.E(errs.Invalid, "seed: timestamp.json names no snapshot")
	}
	snapName := fmt.Sprintf("%d.snapshot.json", sm.Version)
	b, err = read(snapName)
	if err != nil {
		return nil, err
	}
	snap, err := (&metadata.Metadata[metadata.SnapshotType]{}).FromBytes(b)
	if err != nil {
		return nil, errs.Wrap(errs.Invalid, err, "seed: %s", snapName)
	}
	var named []string
	for role, m := range snap.Signed.Meta {
		name := fmt.Sprintf("%d.%s", m.Version, role)
		if !consistentName.MatchString(name) {
			return nil, errs.E(errs.Invalid, "seed: %s names %q", snapName, role)
		}
		named = append(named, name)
	}
	slices.Sort(named)
	out = append(out, named...)
	return append(out, snapName, "root.json", "timestamp.json"), nil
}

// Catalog takes the products a mirror lists; *catalog.Catalog.
type Catalog interface {
	Import(ctx context.Context, p catalog.Product, actor string) (catalog.Product, error)
}

// Releases takes the releases a mirror holds; *registry.Service.
type Releases interface {
	Import(ctx context.Context, rel registry.Release, actor string) error
}

// Parts are the new registry's parts the records go into.
type Parts struct {
	Catalog  Catalog
	Releases Releases
	Builds   Builds // nil: the verdicts stay in the mirror
	Blobs    blob.Store
}

// Records imports the mirror's products, builds and releases into the new
// registry's parts, once AdoptTUF made its TUF repository the mirrored
// one: every product of api/products/, held to the signed targets (signed,
// from AdoptTUF's Result) as heldProducts says; the build of every
// release, held to its builders' attestations as heldBuilds says, with
// its attestations and buildinfo stored in the blob store; then every
// release of api/releases/ (which Releases.Import holds to the signed
// targets).
func Records(ctx context.Context, dir string, signed map[string]mirror.SignedTarget, p Parts) (Result, error) {
	var res Result
	products, err := heldProducts(dir, signed)
	if err != nil {
		return res, err
	}
	rels, err := mirroredReleases(dir)
	if err != nil {
		return res, err
	}
	var builds []heldBuild
	if p.Builds != nil {
		if builds, err = heldBuilds(ctx, dir, rels); err != nil {
			return res, err
		}
	}
	for _, x := range products {
		if _, err := p.Catalog.Import(ctx, x, Actor); err != nil {
			return res, fmt.Errorf("seed: %s: %w", path.Join(mirror.APIDir, "products", x.ID+".json"), err)
		}
		res.Products++
	}
	for _, b := range builds {
		for _, id := range slices.Sorted(maps.Keys(b.builders)) {
			if err := p.Builds.ImportBuilder(ctx, b.builders[id]); err != nil {
				return res, fmt.Errorf("seed: %s/builders.json: %w", mirror.APIDir, err)
			}
		}
		for d, file := range b.blobs {
			f, err := os.Open(filepath.Join(dir, filepath.FromSlash(file)))
			if err != nil {
				return res, fmt.Errorf("seed: %w", err)
			}
			_, err = p.Blobs.Put(ctx, f, d)
			f.Close()
			if err != nil {
				return res, fmt.Errorf("seed: store %s: %w", file, err)
			}
		}
		if err := p.Builds.ImportBuild(ctx, b.doc); err != nil {
			return res, fmt.Errorf("seed: %s: %w", b.file, err)
		}
		res.Builds++
	}
	for _, x := range rels {
		if err := p.Releases.Import(ctx, x, Actor); err != nil {
			return res, fmt.Errorf("seed: %s: %w", path.Join(mirror.APIDir, "releases", x.ID+".json"), err)
		}
		res.Releases++
	}
	return res, nil
}

// mirroredReleases reads api/releases/, in the order the releases were
// published, as the registry's log had them.
func mirroredReleases(dir string) ([]registry.Release, error) {
	files, err := filepath.Glob(filepath.Join(dir, mirror.APIDir, "releases", "*.json"))
	if err != nil {
		return nil, err
	}
	var rels []registry.Release
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("seed: %w", err)
		}
		var r registry.Release
		if err := json.Unmarshal(b, &r); err != nil || r.ID == "" || path.Base(f) != r.ID+".json" {
			return nil, errs.Wrap(errs.Invalid, err, "seed: %s is not a release", rel(dir, f))
		}
		rels = append(rels, r)
	}
	slices.SortStableFunc(rels, func(a, b registry.Release) int { return a.PublishedAt.Compare(b.PublishedAt) })
	return rels, nil
}

func rel(dir, p string) string {
	r, err := filepath.Rel(dir, p)
	if err != nil {
		return p
	}
	return filepath.ToSlash(r)
}
