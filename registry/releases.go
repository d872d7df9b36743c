package registry

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/afterlife-oss/afterlife/internal/blob"
	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/ids"
	"github.com/afterlife-oss/afterlife/internal/principal"
	"github.com/afterlife-oss/afterlife/registry/device"
	"github.com/afterlife-oss/afterlife/registry/sbom"
	"github.com/afterlife-oss/afterlife/registry/tuf"
)

// Channels a release is published on. Devices on testing are offered
// testing and stable releases; devices on stable only stable ones.
const (
	Testing = "testing"
	Stable  = "stable"
)

const maxNotes = 64 << 10

// Release is a reproducible build published for a product.
type Release struct {
	ID              string     `json:"id"`
	Product         string     `json:"product"`
	Version         string     `json:"version"`
	Channel         string     `json:"channel"`
	Notes           string     `json:"notes"`
	MinVersion      string     `json:"min_version,omitempty"`
	BuildID         string     `json:"build_id"`
	Recipe          string     `json:"recipe"`
	RecipeVersion   string     `json:"recipe_version,omitempty"`
	InstallNotes    string     `json:"install_notes,omitempty"`
	VerdictURL      string     `json:"verdict_url"`
	AttestationsURL string     `json:"attestations_url,omitempty"`
	Agreeing        int        `json:"agreeing"`
	Total           int        `json:"total"`
	Artifacts       []Artifact `json:"artifacts"`
	Community       bool       `json:"community"`
	Yanked          bool       `json:"yanked"`
	YankReason      string     `json:"yank_reason,omitempty"`
	YankedAt        time.Time  `json:"yanked_at,omitzero"`
	PulledBack      bool       `json:"pulled_back"`
	Held            bool       `json:"held"` // for review: failure reports from several networks
	HeldReason      string     `json:"held_reason,omitempty"`
	HeldAt          time.Time  `json:"held_at,omitzero"`
	PublishedAt     time.Time  `json:"published_at"`
	PublishedBy     string     `json:"published_by"`
	PromotedAt      time.Time  `json:"promoted_at,omitzero"`
	// RollbackFrom are the yanked versions whose devices may go back to
	// this release (signed, see yank.go).
	RollbackFrom []device.YankedFrom `json:"rollback_from,omitempty"`
	// Rollout is the release's phased rollout, nil when it goes to every
	// device of its channel (rollout.go).
	Rollout *Rollout `json:"rollout,omitempty"`
	// LogEntry is the index of the release's publication entry in the
	// transparency log, signed into its targets once the log holds it
	// (logentries.go); nil until then.
	LogEntry *int64 `json:"log_entry,omitempty"`
}

// Artifact is one file of a release, listed in TUF as Target.
type Artifact struct {
	Name   string `json:"name"`
	Path   string `json:"path"` // in the build's outputs
	Kind   string `json:"kind"`
	Digest string `json:"digest"`
	Size   int64  `json:"size"`
	Target string `json:"target"` // TUF target path
	// Delta, on an artifact of kind "delta", says which image it turns
	// into the release's firmware (delta.go).
	Delta *device.SignedDelta `json:"delta,omitempty"`
	// SBOM is what the registry read of an artifact of kind sbom at
	// publish (its format and components).
	SBOM *sbom.Summary `json:"sbom,omitempty"`
}

// Offered is the artifact a device installs: the first firmware, else the
// first artifact.
func (r Release) Offered() Artifact { return offered(r.Artifacts) }

func offered(arts []Artifact) Artifact {
	for _, a := range arts {
		if a.Kind == "firmware" {
			return a
		}
	}
	return arts[0]
}

// sha256Hex is the artifact's digest without its prefix.
func (a Artifact) sha256Hex() string { return blob.Digest(a.Digest).Hex() }

// targets lists the release's TUF targets with their signed fields
// (device.TargetMeta, docs/tuf.md), so a device decides on signed data
// alone. change adds the product's device ids and risk notes.
func (r Release) targets() []tuf.Target {
	out := make([]tuf.Target, len(r.Artifacts))
	for i, a := range r.Artifacts {
		community := r.Community
		m := device.TargetMeta{
			Schema: device.SchemaVersion, Product: r.Product, Version: r.Version, Channel: r.Channel, ReleaseID: r.ID,
			Kind: a.Kind, Community: &community, MinVersion: r.MinVersion, PulledBack: r.PulledBack, Held: r.Held,
			Yanked: r.Yanked, YankReason: r.YankReason, RollbackFromYanked: r.RollbackFrom, Delta: a.Delta,
		}
		if r.Rollout != nil {
			sr := r.Rollout.SignedRollout
			m.Rollout = &sr
		}
		if r.LogEntry != nil {
			m.Log = &device.SignedLogEntry{Index: *r.LogEntry}
		}
		out[i] = tuf.Target{Path: a.Target, Length: a.Size, SHA256: a.sha256Hex(), Custom: m.Custom()}
	}
	return out
}

func (r Release) targetPaths() []string {
	out := make([]string, len(r.Artifacts))
	for i, a := range r.Artifacts {
		out[i] = a.Target
	}
	return out
}

// PublishRequest is the body of POST /v1/releases.
type PublishRequest struct {
	BuildID    string `json:"build_id"`
	Product    string `json:"product"`
	Version    string `json:"version"`
	Channel    string `json:"channel"`
	Notes      string `json:"notes"`
	MinVersion string `json:"min_version"`
	// Rollout, when given, publishes the release in a phased rollout
	// with these stages, starting now.
	Rollout []device.RolloutStage `json:"rollout,omitempty"`
}

func validChannel(c string) bool { return c == Testing || c == Stable }

// Publish makes a reproducible build a release of a product: it checks
// the build's verdict and that every artifact is stored, signs the new TUF
// targets, records the release and refreshes the update index. Admins may
// publish anything; maintainers the products they were granted.
// checkVersions checks a publication's version and minimum version.
func checkVersions(req PublishRequest) error {
	if err := parseVersion("version", req.Version); err != nil {
		return err
	}
	if req.MinVersion != "" {
		if err := parseVersion("min_version", req.MinVersion); err != nil {
			return err
		}
		if CompareVersions(req.MinVersion, req.Version) >= 0 {
			return errs.E(errs.Invalid, "min_version %s must be older than version %s", req.MinVersion, req.Version)
		}
	}
	return nil
}

func (s *Service) Publish(ctx context.Context, who principal.Principal, req PublishRequest) (Release, error) {
	if req.Channel == "" {
		req.Channel = Testing
	}
	if !validChannel(req.Channel) {
		return Release{}, errs.E(errs.Invalid, "channel %q: want testing or stable", req.Channel)
	}
	// Without a version the release takes its recipe's, known once the
	// build is read.
	if req.Version != "" {
		if err := checkVersions(req); err != nil {
			return Release{}, err
		}
	}
	if len(req.Notes) > maxNotes {
		return Release{}, errs.E(errs.TooLarge, "release notes longer than %d bytes", maxNotes)
	}
	if req.BuildID == "" {
		return Release{}, errs.E(errs.Invalid, "build_id is required: a verdict is the only path to a release")
	}
	if req.Rollout != nil {
		if err := device.ValidStages(req.Rollout); err != nil {
			return Release{}, err
		}
	}
	if _, err := s.o.Catalog.Get(ctx, req.Product); err != nil {
		return Release{}, err
	}
	if err := s.mayRelease(ctx, who, req.Product); err != nil {
		return Release{}, err
	}
	b, err := s.o.Builds.ReproducibleOutputs(ctx, req.BuildID)
	if err != nil {
		return Release{}, fmt.Errorf("registry: build %s: %w", req.BuildID, err)
	}
	if req.Version == "" {
		req.Version = b.RecipeVersion
		if err := checkVersions(req); err != nil {
			return Release{}, fmt.Errorf("registry: the version of build %s's recipe: %w", b.ID, err)
		}
	}
	if !contains(b.Products, req.Product) {
		return Release{}, errs.E(errs.Invalid, "build %s does not target product %s (it targets %s)", b.ID, req.Product, strings.Join(b.Products, ", "))
	}
	if len(b.Outputs) == 0 {
		return Release{}, errs.E(errs.Invalid, "build %s has no outputs", b.ID)
	}
	rel := Release{
		ID: ids.At("rel", s.now()), Product: req.Product, Version: req.Version, Channel: req.Channel,
		Notes: req.Notes, MinVersion: req.MinVersion, BuildID: b.ID, Recipe: b.Recipe, RecipeVersion: b.RecipeVersion,
		InstallNotes: b.InstallNotes, VerdictURL: b.VerdictURL, AttestationsURL: b.AttestationsURL,
		Agreeing: b.Agreeing, Total: b.Total, Community: true,
		PublishedAt: s.now().UTC().Truncate(time.Millisecond), PublishedBy: who.Actor(),
	}
	var rollout string
	if req.Rollout != nil {
		rel.Rollout = &Rollout{SignedRollout: device.SignedRollout{State: device.RolloutActive, Start: rel.PublishedAt, Stages: req.Rollout},
			UpdatedAt: rel.PublishedAt, UpdatedBy: who.Actor()}
		b, _ := json.Marshal(rel.Rollout)
		rollout = string(b)
	}
	seen := map[string]bool{}
	for _, o := range b.Outputs {
		d, err := blob.ParseDigest(o.Digest)
		if err != nil {
			return Release{}, fmt.Errorf("registry: build %s output %s: %w", b.ID, o.Path, err)
		}
		name := path.Base(o.Path)
		if name == "." || name == "/" || name == ".." || seen[name] {
			return Release{}, errs.E(errs.Invalid, "build %s: output %q does not have a unique file name", b.ID, o.Path)
		}
		seen[name] = true
		info, err := s.o.Blobs.Stat(ctx, d)
		if errs.Is(err, errs.NotFound) {
			return Release{}, errs.E(errs.Conflict, "build %s: output %s (%s) is not in the blob store", b.ID, o.Path, d)
		}
		if err != nil {
			return Release{}, fmt.Errorf("registry: stat %s: %w", d, err)
		}
		if info.Size != o.Size {
			return Release{}, errs.E(errs.Conflict, "build %s: output %s is %d bytes in the store, the build says %d", b.ID, o.Path, info.Size, o.Size)
		}
		art := Artifact{
			Name: name, Path: o.Path, Kind: o.Kind, Digest: string(d), Size: o.Size,
			Target: s.o.TUF.TargetPath(rel.Product, rel.Version, name),
		}
		if o.Kind == KindSBOM {
			if art.SBOM, err = s.readSBOM(ctx, d); err != nil {
				return Release{}, fmt.Errorf("registry: build %s: output %s: %w", b.ID, o.Path, err)
			}
		}
		rel.Artifacts = append(rel.Artifacts, art)
	}
	versionIsNew := func(ctx context.Context) error {
		var exists int
		if err := s.db.QueryRowContext(ctx, s.db.Q(`SELECT COUNT(*) FROM releases WHERE product = ? AND version = ?`), rel.Product, rel.Version).Scan(&exists); err != nil {
			return fmt.Errorf("registry: publish: %w", db.Classify(err))
		}
		if exists > 0 {
			return errs.E(errs.Conflict, "product %s already has a release %s (versions are never reused, even after a yank)", rel.Product, rel.Version)
		}
		return nil
	}
	if err := versionIsNew(ctx); err != nil {
		return Release{}, err
	}
	rel.Artifacts = append(rel.Artifacts, s.deltas(ctx, rel)...)
	arts, _ := json.Marshal(rel.Artifacts)
	err = s.change(ctx, versionIsNew, rel.targets(), nil, nil, rel.targetPaths(), func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, s.db.Q(`INSERT INTO releases (id, product, version, channel, notes, min_version, build_id, recipe, recipe_version,
			install_notes, verdict_url, attestations_url, agreeing, total, artifacts, community, published_at, published_by, rollout)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
			rel.ID, rel.Product, rel.Version, rel.Channel, rel.Notes, rel.MinVersion, rel.BuildID, rel.Recipe, rel.RecipeVersion,
			rel.InstallNotes, rel.VerdictURL, rel.AttestationsURL, rel.Agreeing, rel.Total, string(arts), boolInt(rel.Community),
			db.Millis(rel.PublishedAt), rel.PublishedBy, rollout)
		if db.IsUniqueViolation(err) {
			return errs.E(errs.Conflict, "product %s already has a release %s", rel.Product, rel.Version)
		}
		if err != nil {
			return err
		}
		return s.event(ctx, tx, rel.Product, rel.ID, who.Actor(), "published",
			fmt.Sprintf("%s published on %s from build %s (%d of %d builders agreed)", rel.Version, rel.Channel, rel.BuildID, rel.Agreeing, rel.Total))
	})
	if err != nil {
		return Release{}, fmt.Errorf("registry: publish %s %s: %w", rel.Product, rel.Version, err)
	}
	s.log.Info("release published", "release", rel.ID, "product", rel.Product, "version", rel.Version, "channel", rel.Channel, "by", who.Actor())
	s.refreshRollbacks(ctx, rel.Product)
	rel.Rollout.withStage(s.now())
	return rel, nil
}

// Promote moves a testing release to stable.
func (s *Service) Promote(ctx context.Context, who principal.Principal, id string) (Release, error) {
	rel, err := s.changeable(ctx, who, id)
	if err != nil {
		return Release{}, err
	}
	switch {
	case rel.PulledBack:
		return Release{}, errs.E(errs.Conflict, "release %s was pulled back after failed installs; publish a fixed version", id)
	case rel.Held:
		return Release{}, errs.E(errs.Conflict, "release %s is held for review after failed installs; pull it back or resume it first", id)
	case rel.Channel == Stable:
		return Release{}, errs.E(errs.Conflict, "release %s is already stable", id)
	}
	before := rel.targets()
	rel.Channel = Stable
	rel.PromotedAt = s.now().UTC().Truncate(time.Millisecond)
	err = s.change(ctx, nil, rel.targets(), nil, before, nil, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.db.Q(`UPDATE releases SET channel = ?, promoted_at = ? WHERE id = ? AND channel = ? AND yanked = 0 AND pulled_back = 0`),
			Stable, db.Millis(rel.PromotedAt), id, Testing)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return errs.E(errs.Conflict, "release %s changed concurrently", id)
		}
		return s.event(ctx, tx, rel.Product, rel.ID, who.Actor(), "promoted", rel.Version+" promoted from testing to stable")
	})
	if err != nil {
		return Release{}, fmt.Errorf("registry: promote %s: %w", id, err)
	}
	s.refreshRollbacks(ctx, rel.Product)
	return rel, nil
}

// change applies one mutation everywhere it lives: the TUF repository
// first (under the signing lease), then the database in one transaction.
// If the transaction fails, the TUF change is undone with
// undoAdd/undoRemove. A write that changes what the index holds appends a
// registry event naming the product (s.event) in that transaction: this
// replica's index follows it at once, other replicas within a poll
// (follow.go).
func (s *Service) change(ctx context.Context, check func(context.Context) error, add []tuf.Target, remove []string, undoAdd []tuf.Target, undoRemove []string, write func(tx *sql.Tx) error) error {
	_, err := s.withTUFLease(ctx, true, func() error {
		// What the change depends on is checked under the lease: two
		// replicas publishing the same version must not both sign, or the
		// loser's undo would remove the winner's targets.
		if check != nil {
			if err := check(ctx); err != nil {
				return err
			}
		}
		if err := s.signProducts(ctx, add, undoAdd); err != nil {
			return err
		}
		if err := s.signLogEntries(ctx, add, undoAdd); err != nil {
			return err
		}
		err := s.o.TUF.Apply(ctx, add, remove)
		if err != nil && !(len(add) == 0 && errs.Is(err, errs.NotFound)) {
			return err
		}
		err = s.db.Tx(ctx, write)
		if err != nil {
			if uerr := s.o.TUF.Apply(context.WithoutCancel(ctx), undoAdd, undoRemove); uerr != nil {
				s.log.Error("registry: could not undo a TUF change after the database refused it", "err", uerr, "db_err", err)
			}
			return err
		}
		s.signReleaseLists(ctx, add, remove)
		return nil
	})
	if err != nil {
		return err
	}
	if err := s.Poll(ctx); err != nil {
		s.log.Warn("registry: the index could not follow a change; the next poll retries", "err", err)
	}
	return nil
}

func (s *Service) event(ctx context.Context, tx *sql.Tx, product, release, actor, kind, detail string) error {
	seq, err := s.db.NextSeq(ctx, tx, "registry_events")
	if err != nil {
		return err
	}
	now := s.now()
	_, err = tx.ExecContext(ctx, s.db.Q(`INSERT INTO registry_events (id, seq, product, release_id, at, actor, kind, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`),
		ids.At("rev", now), seq, product, release, db.Millis(now), actor, kind, detail)
	return err
}

const releaseCols = `id, product, version, channel, notes, min_version, build_id, recipe, recipe_version, install_notes,
	verdict_url, attestations_url, agreeing, total, artifacts, community, yanked, yank_reason, yanked_at, pulled_back,
	published_at, published_by, promoted_at, held, held_reason, held_at, rollback_from, rollout, log_entry`

func scanRelease(row interface{ Scan(...any) error }) (Release, error) {
	var r Release
	var arts, rollbackFrom, rollout string
	var community, yanked, pulled, held int
	var yankedAt, published, promoted, heldAt, logEntry int64
	if err := row.Scan(&r.ID, &r.Product, &r.Version, &r.Channel, &r.Notes, &r.MinVersion, &r.BuildID, &r.Recipe, &r.RecipeVersion,
		&r.InstallNotes, &r.VerdictURL, &r.AttestationsURL, &r.Agreeing, &r.Total, &arts, &community, &yanked, &r.YankReason,
		&yankedAt, &pulled, &published, &r.PublishedBy, &promoted, &held, &r.HeldReason, &heldAt, &rollbackFrom, &rollout, &logEntry); err != nil {
		return r, err
	}
	if rollbackFrom != "" {
		if err := json.Unmarshal([]byte(rollbackFrom), &r.RollbackFrom); err != nil {
			return r, errs.Wrap(errs.Internal, err, "registry: release %s has an unreadable rollback_from", r.ID)
		}
	}
	if rollout != "" {
		r.Rollout = &Rollout{}
		if err := json.Unmarshal([]byte(rollout), r.Rollout); err != nil {
			return r, errs.Wrap(errs.Internal, err, "registry: release %s has an unreadable rollout", r.ID)
		}
	}
	if logEntry >= 0 {
		r.LogEntry = &logEntry
	}
	r.Community, r.Yanked, r.PulledBack, r.Held = community == 1, yanked == 1, pulled == 1, held == 1
	r.YankedAt, r.PublishedAt, r.PromotedAt, r.HeldAt = db.FromMillis(yankedAt), db.FromMillis(published), db.FromMillis(promoted), db.FromMillis(heldAt)
	if err := json.Unmarshal([]byte(arts), &r.Artifacts); err != nil || len(r.Artifacts) == 0 {
		return r, errs.Wrap(errs.Internal, err, "registry: release %s has no readable artifacts", r.ID)
	}
	return r, nil
}

// Get returns a release, yanked or not.
func (s *Service) Get(ctx context.Context, id string) (Release, error) {
	r, err := scanRelease(s.db.QueryRowContext(ctx, s.db.Q(`SELECT `+releaseCols+` FROM releases WHERE id = ?`), id))
	if err != nil {
		return Release{}, db.NotFound(err, "release %s not found", id)
	}
	r.Rollout.withStage(s.now())
	return r, nil
}

// List returns a product's releases, newest first, yanked ones included.
// An empty product lists every product's.
func (s *Service) List(ctx context.Context, product string) ([]Release, error) {
	q, args := `SELECT `+releaseCols+` FROM releases`, []any{}
	if product != "" {
		q += ` WHERE product = ?`
		args = append(args, product)
	}
	rows, err := s.db.QueryContext(ctx, s.db.Q(q+` ORDER BY published_at DESC, id DESC LIMIT 1000`), args...)
	if err != nil {
		return nil, fmt.Errorf("registry: list releases: %w", db.Classify(err))
	}
	defer rows.Close()
	out := []Release{}
	for rows.Next() {
		r, err := scanRelease(rows)
		if err != nil {
			return nil, err
		}
		r.Rollout.withStage(s.now())
		out = append(out, r)
	}
	return out, db.Classify(rows.Err())
}

// CountReleases counts the releases published, yanked ones included.
func (s *Service) CountReleases(ctx context.Context) (int, error) {
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM releases`).Scan(&n); err != nil {
		return 0, fmt.Errorf("registry: count releases: %w", db.Classify(err))
	}
	return n, nil
}

// LatestStable maps each of products to the version of its newest stable
// release that devices are offered (not yanked, pulled back or held);
// products without one are left out.
func (s *Service) LatestStable(ctx context.Context, products []string) (map[string]string, error) {
	out := map[string]string{}
	if len(products) == 0 {
		return out, nil
	}
	args := []any{"stable"}
	for _, p := range products {
		args = append(args, p)
	}
	rows, err := s.db.QueryContext(ctx, s.db.Q(`SELECT product, version FROM releases
		WHERE channel = ? AND yanked = 0 AND pulled_back = 0 AND held = 0 AND product IN (?`+strings.Repeat(`, ?`, len(products)-1)+`)
		ORDER BY product, published_at DESC, id DESC`), args...)
	if err != nil {
		return nil, fmt.Errorf("registry: latest stable releases: %w", db.Classify(err))
	}
	defer rows.Close()
	for rows.Next() {
		var product, version string
		if err := rows.Scan(&product, &version); err != nil {
			return nil, fmt.Errorf("registry: latest stable releases: %w", err)
		}
		if _, seen := out[product]; !seen {
			out[product] = version
		}
	}
	return out, db.Classify(rows.Err())
}

// mayRelease allows admins, and maintainers granted the product by name or
// by org.
func (s *Service) mayRelease(ctx context.Context, who principal.Principal, product string) error {
	if who.Role == principal.Admin {
		return nil
	}
	if who.IsAnonymous() {
		return errs.E(errs.Unauthenticated, "releasing needs an admin or maintainer token")
	}
	if who.Role != principal.Maintainer {
		return errs.E(errs.Forbidden, "%s may not release product %s", who.Actor(), product)
	}
	// A token without an org matches by name only ("org:" is never
	// granted). PostgreSQL refuses NUL bytes in text, so no sentinel.
	var n int
	if err := s.db.QueryRowContext(ctx, s.db.Q(`SELECT COUNT(*) FROM product_maintainers WHERE product = ? AND grantee IN (?, ?)`),
		product, "name:"+who.Name, "org:"+who.Org).Scan(&n); err != nil {
		return fmt.Errorf("registry: maintainers: %w", db.Classify(err))
	}
	if n == 0 {
		return errs.E(errs.Forbidden, "%s is not a maintainer of product %s (an admin grants it)", who.Actor(), product)
	}
	return nil
}

// Grant is a maintainer allowed on a product: a token name or an org.
type Grant struct {
	Product   string    `json:"product"`
	Name      string    `json:"name,omitempty"`
	Org       string    `json:"org,omitempty"`
	GrantedAt time.Time `json:"granted_at"`
	GrantedBy string    `json:"granted_by"`
}

// GrantMaintainer lets maintainer tokens with that name (or of that org)
// release the product. Only admins grant.
func (s *Service) GrantMaintainer(ctx context.Context, who principal.Principal, product, name, org string) (Grant, error) {
	if who.Role != principal.Admin {
		return Grant{}, errs.E(errs.Forbidden, "only an admin grants maintainers")
	}
	if (name == "") == (org == "") || len(name) > 200 || len(org) > 200 {
		return Grant{}, errs.E(errs.Invalid, "give exactly one of name (a maintainer token's name) or org")
	}
	if _, err := s.o.Catalog.Get(ctx, product); err != nil {
		return Grant{}, err
	}
	g := Grant{Product: product, Name: name, Org: org, GrantedAt: s.now().UTC().Truncate(time.Millisecond), GrantedBy: who.Actor()}
	grantee := "name:" + name
	if org != "" {
		grantee = "org:" + org
	}
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, s.db.Q(`INSERT INTO product_maintainers (product, grantee, granted_at, granted_by) VALUES (?, ?, ?, ?)
			ON CONFLICT (product, grantee) DO NOTHING`), product, grantee, db.Millis(g.GrantedAt), g.GrantedBy)
		if err != nil {
			return err
		}
		return s.event(ctx, tx, product, "", who.Actor(), "maintainer_granted", grantee+" may release "+product)
	})
	if err != nil {
		return Grant{}, fmt.Errorf("registry: grant %s on %s: %w", grantee, product, err)
	}
	return g, nil
}

// RevokeMaintainer takes back a grant made with GrantMaintainer: exactly
// one of name or org, as granted. Releases already published stay.
func (s *Service) RevokeMaintainer(ctx context.Context, who principal.Principal, product, name, org string) error {
	if who.Role != principal.Admin {
		return errs.E(errs.Forbidden, "only an admin revokes maintainers")
	}
	if (name == "") == (org == "") {
		return errs.E(errs.Invalid, "give exactly one of name (a maintainer token's name) or org")
	}
	grantee := "name:" + name
	if org != "" {
		grantee = "org:" + org
	}
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.db.Q(`DELETE FROM product_maintainers WHERE product = ? AND grantee = ?`), product, grantee)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return errs.E(errs.NotFound, "%s is not a maintainer of product %s", grantee, product)
		}
		return s.event(ctx, tx, product, "", who.Actor(), "maintainer_revoked", grantee+" may no longer release "+product)
	})
	if err != nil {
		return fmt.Errorf("registry: revoke %s on %s: %w", grantee, product, err)
	}
	return nil
}

// Maintainers lists a product's grants.
func (s *Service) Maintainers(ctx context.Context, product string) ([]Grant, error) {
	rows, err := s.db.QueryContext(ctx, s.db.Q(`SELECT grantee, granted_at, granted_by FROM product_maintainers WHERE product = ? ORDER BY grantee`), product)
	if err != nil {
		return nil, fmt.Errorf("registry: maintainers: %w", db.Classify(err))
	}
	defer rows.Close()
	out := []Grant{}
	for rows.Next() {
		var grantee string
		var at int64
		g := Grant{Product: product}
		if err := rows.Scan(&grantee, &at, &g.GrantedBy); err != nil {
			return nil, err
		}
		g.GrantedAt = db.FromMillis(at)
		if v, ok := strings.CutPrefix(grantee, "org:"); ok {
			g.Org = v
		} else {
			g.Name = strings.TrimPrefix(grantee, "name:")
		}
		out = append(out, g)
	}
	return out, db.Classify(rows.Err())
}

// Event is one entry of the registry's append-only log for a product.
type Event struct {
	ID      string    `json:"id"`
	Seq     int64     `json:"seq"` // the event's place in the registry's log, gap-free
	Product string    `json:"product"`
	Release string    `json:"release_id,omitempty"`
	At      time.Time `json:"at"`
	Actor   string    `json:"actor"`
	Kind    string    `json:"kind"` // published, promoted, yanked, rollback, held, resumed, pulled_back, rollout_*, pullback_policy, maintainer_granted, maintainer_revoked
	Detail  string    `json:"detail"`
}

// Events returns a product's registry events, oldest first.
func (s *Service) Events(ctx context.Context, product string) ([]Event, error) {
	rows, err := s.db.QueryContext(ctx, s.db.Q(`SELECT id, seq, product, release_id, at, actor, kind, detail FROM registry_events WHERE product = ? ORDER BY seq`), product)
	if err != nil {
		return nil, fmt.Errorf("registry: events: %w", db.Classify(err))
	}
	defer rows.Close()
	out := []Event{}
	for rows.Next() {
		var e Event
		var at int64
		if err := rows.Scan(&e.ID, &e.Seq, &e.Product, &e.Release, &at, &e.Actor, &e.Kind, &e.Detail); err != nil {
			return nil, err
		}
		e.At = db.FromMillis(at)
		out = append(out, e)
	}
	return out, db.Classify(rows.Err())
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func blobDigest(a Artifact) blob.Digest { return blob.Digest(a.Digest) }

// ArtifactDigests lists, sorted and once each, the digests of every
// release's artifacts, yanked or not: the blobs the registry serves, which
// the escrow's scrub re-reads and re-hashes with its own.
func (s *Service) ArtifactDigests(ctx context.Context) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, s.db.Q(`SELECT id, artifacts FROM releases ORDER BY id`))
	if err != nil {
		return nil, fmt.Errorf("registry: artifact digests: %w", db.Classify(err))
	}
	defer rows.Close()
	seen := map[string]bool{}
	for rows.Next() {
		var id, raw string
		if err := rows.Scan(&id, &raw); err != nil {
			return nil, fmt.Errorf("registry: artifact digests: %w", err)
		}
		var arts []Artifact
		if err := json.Unmarshal([]byte(raw), &arts); err != nil {
			return nil, errs.Wrap(errs.Internal, err, "registry: release %s has no readable artifacts", id)
		}
		for _, a := range arts {
			seen[a.Digest] = true
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("registry: artifact digests: %w", db.Classify(err))
	}
	out := make([]string, 0, len(seen))
	for d := range seen {
		out = append(out, d)
	}
	sort.Strings(out)
	return out, nil
}
