// Package fwupd exports the registry's community releases as an fwupd
// remote, for devices that run fwupd and will never run afterlife's own
// client: one cabinet per release (the firmware and its AppStream
// metainfo, on a community branch as the LVFS end-of-life policy asks),
// remote metadata (firmware.xml.zst) and its Jcat file with a sha256
// checksum and a PKCS#7 signature by a key the registry's fwupd CA
// certified.
//
// It reads products and releases through the small interfaces below and
// exports release targets only: nothing of a deposit reaches it. The files
// it serves under /fwupd/ form a static tree (immutable cabinets and
// generations, plus the two current names), so a mirror copies them as
// they are.
package fwupd

import (
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"database/sql"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/afterlife-oss/afterlife/internal/blob"
	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/ids"
	"github.com/afterlife-oss/afterlife/registry"
	"github.com/afterlife-oss/afterlife/registry/catalog"
	"github.com/afterlife-oss/afterlife/registry/fwupd/cab"
	"github.com/afterlife-oss/afterlife/registry/fwupd/jcat"
	"github.com/afterlife-oss/afterlife/registry/fwupd/remoteconf"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Products lists the products that declare fwupd GUIDs;
// *catalog.Catalog implements it.
type Products interface {
	WithFwupdGUIDs(ctx context.Context) ([]catalog.Product, error)
}

// Releases lists a product's releases; *registry.Service implements it.
type Releases interface {
	List(ctx context.Context, product string) ([]registry.Release, error)
}

// Options configure a Remote.
type Options struct {
	DB       *db.DB
	Blobs    blob.Store
	Products Products
	Releases Releases
	Signer   *Signer
	// PublicURL is where the registry is reached; the .conf file and
	// the pages name it.
	PublicURL string
	// Branch is the fwupd branch of every release (default "community").
	Branch string
	// MinInterval separates generations (default one minute): a switch
	// is the only moment a client's two downloads can straddle, so
	// switches stay rare however often releases change.
	MinInterval time.Duration
	Now         func() time.Time
	Logger      *slog.Logger
	ReplicaID   string
}

// Remote is the fwupd export.
type Remote struct {
	o   Options
	enc *zstd.Encoder
}

// RemoteID names the remote on devices: its .conf file is RemoteID.conf.
const RemoteID = remoteconf.RemoteID

// New migrates the export's tables.
func New(ctx context.Context, o Options) (*Remote, error) {
	if o.DB == nil || o.Blobs == nil || o.Products == nil || o.Releases == nil || o.Signer == nil {
		return nil, errs.E(errs.Invalid, "fwupd: DB, Blobs, Products, Releases and Signer are required")
	}
	if err := Migrate(ctx, o.DB); err != nil {
		return nil, err
	}
	if o.Branch == "" {
		o.Branch = remoteconf.DefaultBranch
	}
	if o.MinInterval <= 0 {
		o.MinInterval = time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.ReplicaID == "" {
		o.ReplicaID = ids.New("replica")
	}
	o.PublicURL = strings.TrimRight(o.PublicURL, "/")
	if err := recordCA(ctx, o.DB, o.Signer, o.Now()); err != nil {
		return nil, err
	}
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedBetterCompression))
	if err != nil {
		return nil, fmt.Errorf("fwupd: zstd: %w", err)
	}
	return &Remote{o: o, enc: enc}, nil
}

// Migrate applies the export's migrations.
func Migrate(ctx context.Context, d *db.DB) error {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return fmt.Errorf("fwupd: migrations: %w", err)
	}
	if err := d.Migrate(ctx, "fwupd", sub); err != nil {
		return fmt.Errorf("fwupd: %w", err)
	}
	return nil
}

// RecordedCA is the sha256 of the CA certificate the database recorded,
// "" before any replica served the remote.
func RecordedCA(ctx context.Context, d *db.DB) (string, error) {
	var fp string
	err := d.QueryRowContext(ctx, d.Q(`SELECT fingerprint FROM fwupd_ca WHERE id = 'ca'`)).Scan(&fp)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("fwupd: read the CA: %w", db.Classify(err))
	}
	return fp, nil
}

// recordCA records the CA certificate's fingerprint the first time, and
// refuses a signer under another CA after that.
func recordCA(ctx context.Context, d *db.DB, s *Signer, now time.Time) error {
	sum := sha256.Sum256(s.CA.Raw)
	fp := hex.EncodeToString(sum[:])
	if _, err := d.ExecContext(ctx, d.Q(`INSERT INTO fwupd_ca (id, fingerprint, subject, recorded_at) VALUES ('ca', ?, ?, ?) ON CONFLICT (id) DO NOTHING`),
		fp, s.CA.Subject.String(), db.Millis(now)); err != nil {
		return fmt.Errorf("fwupd: record the CA: %w", err)
	}
	var recorded, subject string
	if err := d.QueryRowContext(ctx, d.Q(`SELECT fingerprint, subject FROM fwupd_ca WHERE id = 'ca'`)).Scan(&recorded, &subject); err != nil {
		return fmt.Errorf("fwupd: read the CA: %w", db.Classify(err))
	}
	if recorded != fp {
		return errs.E(errs.Conflict, "fwupd: this replica's CA certificate (sha256 %.16s…, %s) is not the one the database recorded (sha256 %.16s…, %s): devices trust that one; give this replica the same KEYS/fwupd as the others (docs/fwupd.md)",
			fp, s.CA.Subject, recorded, subject)
	}
	return nil
}

// Branch is the fwupd branch of every exported release.
func (r *Remote) Branch() string { return r.o.Branch }

// Generation is one published pair of metadata and Jcat file.
type Generation struct {
	N            int64       `json:"generation"`
	Metadata     blob.Digest `json:"metadata"`
	MetadataSize int64       `json:"metadata_size"`
	Jcat         blob.Digest `json:"jcat"`
	JcatSize     int64       `json:"jcat_size"`
	Releases     int         `json:"releases"`
	PublishedAt  time.Time   `json:"published_at"`
}

// Cab is one exported release's cabinet.
type Cab struct {
	Release string
	Name    string
	Digest  blob.Digest
	SHA1    string
	Size    int64
}

// exported says whether a release goes to fwupd: community firmware on
// the stable channel that is offered to devices now.
func exported(r registry.Release) bool {
	return r.Community && r.Channel == registry.Stable && !r.Yanked && !r.PulledBack && !r.Held && len(r.Artifacts) > 0
}

const exportLease = "fwupd.export"

// maxSignedPayload bounds the firmware the export reads whole to sign it.
const maxSignedPayload = 256 << 20

// Export builds the cabinets of releases not yet exported and publishes a
// new generation when the metadata changed and the newest generation is
// at least MinInterval old. It reports the generation it published (nil
// when nothing changed, the lease is held elsewhere, or it must wait).
func (r *Remote) Export(ctx context.Context) (*Generation, error) {
	now := r.o.Now()
	ok, err := r.o.DB.TryLease(ctx, exportLease, r.o.ReplicaID, 10*time.Minute, now)
	if err != nil || !ok {
		return nil, err
	}
	defer func() {
		if err := r.o.DB.ReleaseLease(context.WithoutCancel(ctx), exportLease, r.o.ReplicaID); err != nil {
			r.o.Logger.Warn("fwupd: release export lease", "err", err)
		}
	}()
	doc, n, err := r.document(ctx)
	if err != nil {
		return nil, err
	}
	xmlBytes, err := marshalXML(doc)
	if err != nil {
		return nil, fmt.Errorf("fwupd: metadata: %w", err)
	}
	meta := r.enc.EncodeAll(xmlBytes, nil)
	gens, err := r.newest(ctx, 1)
	if err != nil {
		return nil, err
	}
	// The first generation is published even when it lists nothing, so
	// the remote answers (and fwupd refreshes an empty remote) from the
	// start.
	var prev *Generation
	if len(gens) > 0 {
		prev = &gens[0]
		if prev.Metadata == blob.FromBytes(meta) {
			return nil, nil
		}
		if now.Sub(prev.PublishedAt) < r.o.MinInterval {
			r.o.Logger.Debug("fwupd: metadata changed; publishing once the newest generation is older than the minimum interval", "generation", prev.N)
			return nil, nil
		}
	}
	sig, err := jcat.Sign(meta, r.o.Signer.Cert, r.o.Signer.Key, now)
	if err != nil {
		return nil, err
	}
	item := jcat.Item{ID: "firmware.xml.zst", Blobs: []jcat.Blob{jcat.Checksum(meta, now), sig}}
	jf := jcat.New()
	jf.Items = append(jf.Items, item)
	jb, err := jf.Marshal()
	if err != nil {
		return nil, err
	}
	mi, err := r.o.Blobs.Put(ctx, bytes.NewReader(meta), blob.FromBytes(meta))
	if err != nil {
		return nil, fmt.Errorf("fwupd: store metadata: %w", err)
	}
	ji, err := r.o.Blobs.Put(ctx, bytes.NewReader(jb), blob.FromBytes(jb))
	if err != nil {
		return nil, fmt.Errorf("fwupd: store jcat: %w", err)
	}
	g := Generation{N: 1, Metadata: mi.Digest, MetadataSize: mi.Size, Jcat: ji.Digest, JcatSize: ji.Size, Releases: n,
		PublishedAt: now.UTC().Truncate(time.Millisecond)}
	if prev != nil {
		g.N = prev.N + 1
	}
	// The insert is the one step that publishes metadata and Jcat file
	// together; a concurrent export of the same generation loses here.
	_, err = r.o.DB.ExecContext(ctx, r.o.DB.Q(`INSERT INTO fwupd_generations (generation, metadata_digest, metadata_size, jcat_digest, jcat_size, releases, published_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)`), g.N, string(g.Metadata), g.MetadataSize, string(g.Jcat), g.JcatSize, g.Releases, db.Millis(g.PublishedAt))
	if db.IsUniqueViolation(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("fwupd: publish generation %d: %w", g.N, err)
	}
	r.o.Logger.Info("fwupd metadata published", "generation", g.N, "releases", n, "metadata_size", g.MetadataSize)
	return &g, nil
}

// document is the remote's metadata: one component per product that
// declares fwupd GUIDs and has exported releases, newest release first.
func (r *Remote) document(ctx context.Context) (components, int, error) {
	doc := components{Origin: RemoteID, Version: "0.9"}
	products, err := r.o.Products.WithFwupdGUIDs(ctx)
	if err != nil {
		return doc, 0, fmt.Errorf("fwupd: products: %w", err)
	}
	cabs, err := r.cabs(ctx)
	if err != nil {
		return doc, 0, err
	}
	n := 0
	for _, p := range products {
		rels, err := r.o.Releases.List(ctx, p.ID)
		if err != nil {
			return doc, 0, fmt.Errorf("fwupd: releases of %s: %w", p.ID, err)
		}
		rels = slices.DeleteFunc(rels, func(x registry.Release) bool { return !exported(x) })
		if len(rels) == 0 {
			continue
		}
		slices.SortFunc(rels, func(a, b registry.Release) int { return registry.CompareVersions(b.Version, a.Version) })
		var comp component
		for _, rel := range rels {
			c, ok := cabs[rel.ID]
			if !ok {
				c, err = r.cab(ctx, p, rel)
				if errs.Is(err, errs.TooLarge) {
					r.o.Logger.Warn("fwupd: release not exported", "release", rel.ID, "err", err)
					continue
				}
				if err != nil {
					return doc, 0, err
				}
			}
			m := metainfo(p, r.absolute(rel), r.o.Branch, r.productURL(p.ID), blob.Digest(rel.Offered().Digest).Hex())
			out := m.Releases[0]
			out.Location = r.o.PublicURL + Prefix + "cabs/" + c.Name
			out.Checksums = append([]checksum{
				{Type: "sha1", Filename: c.Name, Target: "container", Value: c.SHA1},
				{Type: "sha256", Filename: c.Name, Target: "container", Value: c.Digest.Hex()},
			}, out.Checksums...)
			out.Sizes = []size{{Type: "download", Value: c.Size}, {Type: "installed", Value: rel.Offered().Size}}
			if comp.ID == "" {
				comp = m
				comp.Releases = nil
			}
			comp.Releases = append(comp.Releases, out)
			n++
		}
		if comp.ID != "" {
			doc.Components = append(doc.Components, comp)
		}
	}
	return doc, n, nil
}

func (r *Remote) productURL(id string) string { return r.o.PublicURL + "/products/" + id }

// absolute gives rel's verdict link the server's address: fwupd shows
// it to owners, who do not know which server a path belongs to.
func (r *Remote) absolute(rel registry.Release) registry.Release {
	if strings.HasPrefix(rel.VerdictURL, "/") {
		rel.VerdictURL = r.o.PublicURL + rel.VerdictURL
	}
	return rel
}

// cabs returns every cabinet built so far, by release id: one query per
// export, however many releases there are.
func (r *Remote) cabs(ctx context.Context) (map[string]Cab, error) {
	rows, err := r.o.DB.QueryContext(ctx, r.o.DB.Q(`SELECT release_id, name, digest, sha1, size FROM fwupd_cabs`))
	if err != nil {
		return nil, fmt.Errorf("fwupd: cabinets: %w", db.Classify(err))
	}
	defer rows.Close()
	out := map[string]Cab{}
	for rows.Next() {
		var c Cab
		var digest string
		if err := rows.Scan(&c.Release, &c.Name, &digest, &c.SHA1, &c.Size); err != nil {
			return nil, err
		}
		c.Digest = blob.Digest(digest)
		out[c.Release] = c
	}
	return out, db.Classify(rows.Err())
}

// cab builds and stores the cabinet of rel.
func (r *Remote) cab(ctx context.Context, p catalog.Product, rel registry.Release) (Cab, error) {
	c := Cab{Release: rel.ID}
	payload := rel.Offered()
	m := metainfo(p, r.absolute(rel), r.o.Branch, r.productURL(p.ID), blob.Digest(payload.Digest).Hex())
	mx, err := marshalXML(m)
	if err != nil {
		return c, fmt.Errorf("fwupd: metainfo of %s: %w", rel.ID, err)
	}
	// LVFS signs each file of a cabinet in firmware.jcat; fwupd trusts the
	// payload when a certificate in its firmware certificate directory
	// (/etc/pki/fwupd) verifies it. The signature needs the whole payload.
	if payload.Size > maxSignedPayload {
		return c, errs.E(errs.TooLarge, "fwupd: release %s: firmware of %d bytes is larger than the %d the fwupd export signs", rel.ID, payload.Size, int64(maxSignedPayload))
	}
	fw, err := r.read(ctx, blob.Digest(payload.Digest))
	if err != nil {
		return c, err
	}
	at := r.o.Now()
	jf := jcat.New()
	for _, f := range []struct {
		name string
		data []byte
	}{{PayloadName, fw}, {MetainfoName, mx}} {
		sig, err := jcat.Sign(f.data, r.o.Signer.Cert, r.o.Signer.Key, at)
		if err != nil {
			return c, err
		}
		jf.Items = append(jf.Items, jcat.Item{ID: f.name, Blobs: []jcat.Blob{jcat.Checksum(f.data, at), sig}})
	}
	jb, err := jf.Marshal()
	if err != nil {
		return c, err
	}
	member := func(name string, b []byte) cab.File {
		return cab.File{Name: name, Size: int64(len(b)), Modified: rel.PublishedAt, Open: func() (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(b)), nil
		}}
	}
	files := []cab.File{member(PayloadName, fw), member(MetainfoName, mx), member(JcatName, jb)}
	pr, pw := io.Pipe()
	sum := sha1.New()
	go func() {
		_, err := cab.Write(io.MultiWriter(pw, sum), files)
		pw.CloseWithError(err)
	}()
	info, err := r.o.Blobs.Put(ctx, pr, "")
	pr.CloseWithError(err) // unblocks the writer if Put gave up early
	if err != nil {
		return c, fmt.Errorf("fwupd: cab of %s: %w", rel.ID, err)
	}
	c.Name = fmt.Sprintf("%s-%s-%s.cab", p.ID, rel.Version, strings.TrimPrefix(rel.ID, "rel_"))
	c.Digest, c.SHA1, c.Size = info.Digest, hex.EncodeToString(sum.Sum(nil)), info.Size
	_, err = r.o.DB.ExecContext(ctx, r.o.DB.Q(`INSERT INTO fwupd_cabs (release_id, name, digest, sha1, size, created_at) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (release_id) DO NOTHING`), c.Release, c.Name, string(c.Digest), c.SHA1, c.Size, db.Millis(r.o.Now()))
	if err != nil {
		return c, fmt.Errorf("fwupd: record cab of %s: %w", rel.ID, err)
	}
	return c, nil
}

func (r *Remote) read(ctx context.Context, d blob.Digest) ([]byte, error) {
	rc, err := r.o.Blobs.Get(ctx, d, 0, -1)
	if err != nil {
		return nil, fmt.Errorf("fwupd: read %s: %w", d, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return nil, fmt.Errorf("fwupd: read %s: %w", d, err)
	}
	if blob.FromBytes(b) != d {
		return nil, errs.E(errs.Internal, "fwupd: blob %s does not match its digest", d)
	}
	return b, nil
}

// newest returns up to n generations, newest first.
func (r *Remote) newest(ctx context.Context, n int) ([]Generation, error) {
	rows, err := r.o.DB.QueryContext(ctx, r.o.DB.Q(fmt.Sprintf(`SELECT generation, metadata_digest, metadata_size, jcat_digest, jcat_size, releases, published_at
		FROM fwupd_generations ORDER BY generation DESC LIMIT %d`, n)))
	if err != nil {
		return nil, fmt.Errorf("fwupd: generations: %w", db.Classify(err))
	}
	defer rows.Close()
	var out []Generation
	for rows.Next() {
		g, err := scanGeneration(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, g)
	}
	return out, db.Classify(rows.Err())
}

func scanGeneration(row interface{ Scan(...any) error }) (Generation, error) {
	var g Generation
	var md, jd string
	var at int64
	if err := row.Scan(&g.N, &md, &g.MetadataSize, &jd, &g.JcatSize, &g.Releases, &at); err != nil {
		return g, err
	}
	g.Metadata, g.Jcat, g.PublishedAt = blob.Digest(md), blob.Digest(jd), db.FromMillis(at)
	return g, nil
}

// Current is the newest generation: the current names serve its
// metadata and its Jcat file, both from this one row.
func (r *Remote) Current(ctx context.Context) (Generation, error) {
	gens, err := r.newest(ctx, 1)
	if err != nil {
		return Generation{}, err
	}
	if len(gens) == 0 {
		return Generation{}, errs.E(errs.NotFound, "fwupd: no metadata published yet")
	}
	return gens[0], nil
}

// Get returns generation n.
func (r *Remote) Get(ctx context.Context, n int64) (Generation, error) {
	g, err := scanGeneration(r.o.DB.QueryRowContext(ctx, r.o.DB.Q(`SELECT generation, metadata_digest, metadata_size, jcat_digest, jcat_size, releases, published_at
		FROM fwupd_generations WHERE generation = ?`), n))
	if err != nil {
		return Generation{}, db.NotFound(err, "fwupd: no generation %d", n)
	}
	return g, nil
}

// CabByName returns an exported cabinet.
func (r *Remote) CabByName(ctx context.Context, name string) (Cab, error) {
	c := Cab{Name: name}
	var digest string
	err := r.o.DB.QueryRowContext(ctx, r.o.DB.Q(`SELECT release_id, digest, sha1, size FROM fwupd_cabs WHERE name = ?`), name).
		Scan(&c.Release, &digest, &c.SHA1, &c.Size)
	if err != nil {
		return Cab{}, db.NotFound(err, "fwupd: no cabinet %s", name)
	}
	c.Digest = blob.Digest(digest)
	return c, nil
}

// Run exports at once and then every interval until ctx ends; one replica
// at a time exports (a database lease).
func (r *Remote) Run(ctx context.Context, every time.Duration) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if _, err := r.Export(ctx); err != nil && ctx.Err() == nil {
			r.o.Logger.Warn("fwupd: export failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
