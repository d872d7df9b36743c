package mirror

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/transparency-dev/tessera/api/layout"

	"github.com/afterlife-oss/afterlife/escrow/wire"
	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/httpclient"
	"github.com/afterlife-oss/afterlife/internal/relpath"
	"github.com/afterlife-oss/afterlife/registry/fwupd/remoteconf"
	"github.com/afterlife-oss/afterlife/registry/translog/verify"
)

// PullOptions configure a pull.
type PullOptions struct {
	// From is the origin's public URL.
	From string
	// Dir is the mirror directory; it is created when missing.
	Dir string
	// Parallel is how many files are fetched at once (default 8).
	Parallel int
	// HTTP is the client (default: afterlife's retrying client).
	HTTP *http.Client
	// Logger receives progress (default: discard).
	Logger *slog.Logger
	// Now stamps mirror.json (default time.Now).
	Now func() time.Time
	// PublicURL is where the mirror will be served, when known: the fwupd
	// remote's .conf in the mirror then names it (fwupd.MirrorConf)
	// instead of the origin, so the remote works without the origin.
	PublicURL string
	// LogWait bounds the wait for a witnessed log checkpoint that covers
	// every entry the targets cite (default 30s; negative: no wait).
	LogWait time.Duration
}

// PullResult says what a pull did.
type PullResult struct {
	Files    int64         `json:"files"`   // downloaded
	Kept     int64         `json:"kept"`    // already present with the right digest
	Bytes    int64         `json:"bytes"`   // received
	Targets  int           `json:"targets"` // TUF target files
	Releases int           `json:"releases"`
	Deposits int           `json:"deposits"`
	LogSize  int64         `json:"log_size"` // entries the mirrored checkpoint covers
	Took     time.Duration `json:"took_ns"`
}

// Pull copies everything public of the registry at o.From into o.Dir:
// immutable files first (every root version, the metadata the current
// timestamp names, targets, released deposits' public files, attestations,
// the log's tiles, fwupd cabinets), then the API answers and pages, and
// last the files that point at the others (the fwupd metadata with its
// Jcat file, root.json, timestamp.json, the log checkpoint), so a mirror
// never points at a file it lacks. A pull that stops half way leaves
// partial downloads as .part files and is resumed by pulling again.
func Pull(ctx context.Context, o PullOptions) (PullResult, error) {
	began := time.Now()
	if o.Parallel <= 0 {
		o.Parallel = 8
	}
	if o.HTTP == nil {
		o.HTTP = httpclient.Standard(httpclient.Options{RetryMax: 4})
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.LogWait == 0 {
		o.LogWait = 30 * time.Second
	}
	u, err := url.Parse(o.From)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return PullResult{}, errs.E(errs.Invalid, "mirror: --from %q is not an http(s) URL", o.From)
	}
	f := &fetcher{base: strings.TrimSuffix(o.From, "/"), dir: o.Dir, http: o.HTTP}
	p := &puller{f: f, o: o, log: o.Logger}
	var res PullResult
	res, err = p.run(ctx)
	res.Files, res.Kept, res.Bytes, res.Took = f.files.Load(), f.kept.Load(), f.bytes.Load(), time.Since(began)
	return res, err
}

type puller struct {
	f   *fetcher
	o   PullOptions
	log *slog.Logger
}

// parallel runs fn for each item, o.Parallel at a time, and returns the
// first error.
func parallel[T any](ctx context.Context, n int, items []T, fn func(context.Context, T) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
		sem   = make(chan struct{}, n)
	)
	for _, it := range items {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := fn(ctx, it); err != nil {
				once.Do(func() { first = err; cancel() })
			}
		}()
	}
	wg.Wait()
	if first == nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return first
}

func (p *puller) run(ctx context.Context) (PullResult, error) {
	var res PullResult
	f := p.f
	// What points at everything else is read first and written last.
	timestamp, _, err := f.get(ctx, "/tuf/timestamp.json")
	if err != nil {
		return res, fmt.Errorf("mirror: the origin's TUF timestamp: %w", err)
	}
	rootJSON, _, err := f.get(ctx, "/tuf/root.json")
	if err != nil {
		return res, fmt.Errorf("mirror: the origin's TUF root: %w", err)
	}

	// TUF: every root version, then the metadata the timestamp names and
	// the targets it lists.
	root, err := (&metadata.Metadata[metadata.RootType]{}).FromBytes(rootJSON)
	if err != nil {
		return res, errs.Wrap(errs.Invalid, err, "mirror: the origin's root.json")
	}
	for v := int64(1); v <= root.Signed.Version; v++ {
		if err := f.file(ctx, "/tuf/"+metaName(v, "root"), path.Join(TUFDir, metaName(v, "root")), "", -1); err != nil {
			return res, err
		}
	}
	ts, err := (&metadata.Metadata[metadata.TimestampType]{}).FromBytes(timestamp)
	if err != nil {
		return res, errs.Wrap(errs.Invalid, err, "mirror: the origin's timestamp.json")
	}
	snapName, _, err := snapshotName(ts)
	if err != nil {
		return res, errs.Wrap(errs.Invalid, err, "mirror: the origin's timestamp.json")
	}
	snapJSON, err := p.immutableDoc(ctx, "/tuf/"+snapName, path.Join(TUFDir, snapName))
	if err != nil {
		return res, err
	}
	snap, err := (&metadata.Metadata[metadata.SnapshotType]{}).FromBytes(snapJSON)
	if err != nil {
		return res, errs.Wrap(errs.Invalid, err, "mirror: %s", snapName)
	}
	tm, ok := snap.Signed.Meta["targets.json"]
	if !ok {
		return res, errs.E(errs.Invalid, "mirror: %s names no targets.json", snapName)
	}
	targetsName := metaName(tm.Version, "targets")
	targetsJSON, err := p.immutableDoc(ctx, "/tuf/"+targetsName, path.Join(TUFDir, targetsName))
	if err != nil {
		return res, err
	}
	targets, err := (&metadata.Metadata[metadata.TargetsType]{}).FromBytes(targetsJSON)
	if err != nil {
		return res, errs.Wrap(errs.Invalid, err, "mirror: %s", targetsName)
	}
	all := targetsOf(targets)
	bins, err := delegatedFiles(snap, targets)
	if err != nil {
		return res, errs.Wrap(errs.Invalid, err, "mirror: %s", snapName)
	}
	binNames := make([]string, 0, len(bins))
	for _, n := range bins {
		binNames = append(binNames, n)
	}
	slices.Sort(binNames)
	var mu sync.Mutex
	err = parallel(ctx, p.o.Parallel, binNames, func(ctx context.Context, n string) error {
		b, err := p.immutableDoc(ctx, "/tuf/"+n, path.Join(TUFDir, n))
		if err != nil {
			return err
		}
		bin, err := (&metadata.Metadata[metadata.TargetsType]{}).FromBytes(b)
		if err != nil {
			return errs.Wrap(errs.Invalid, err, "mirror: %s", n)
		}
		mu.Lock()
		all = append(all, targetsOf(bin)...)
		mu.Unlock()
		return nil
	})
	if err != nil {
		return res, err
	}
	res.Targets = len(all)
	p.log.Info("mirror: TUF metadata read", "targets", len(all), "bins", len(bins))
	// The log's checkpoint is read after the targets, which cite entries
	// of the log: it must cover every one, or a device proving a release
	// from the mirror's tiles would find its entry missing.
	checkpoint, err := p.coveringCheckpoint(ctx, all)
	if err != nil {
		return res, err
	}
	err = parallel(ctx, p.o.Parallel, all, func(ctx context.Context, t SignedTarget) error {
		if relpath.Check(t.Name) != nil || len(t.SHA256) != 64 {
			return errs.E(errs.Invalid, "mirror: the origin lists a target %q that cannot be mirrored", t.Name)
		}
		rel := targetFile(t.Name, t.SHA256)
		return f.file(ctx, "/"+rel, rel, t.SHA256, t.Length)
	})
	if err != nil {
		return res, err
	}

	// Support-period documents where the API serves them, and their
	// catalogue.
	if err := p.lifecycle(ctx, all); err != nil {
		return res, err
	}

	// Releases, their builds' verdicts and attestations.
	releaseIDs := map[string]bool{}
	for _, t := range all {
		if t.Meta.ReleaseID != "" && safeID(t.Meta.ReleaseID) {
			releaseIDs[t.Meta.ReleaseID] = true
		}
	}
	res.Releases = len(releaseIDs)
	buildIDs := map[string]bool{}
	ids := sortedKeys(releaseIDs)
	err = parallel(ctx, p.o.Parallel, ids, func(ctx context.Context, id string) error {
		b, err := f.copyDoc(ctx, "/v1/releases/"+url.PathEscape(id), releaseFile(id))
		if err != nil {
			return err
		}
		var rel struct {
			BuildID string `json:"build_id"`
		}
		if json.Unmarshal(b, &rel) == nil && safeID(rel.BuildID) {
			mu.Lock()
			buildIDs[rel.BuildID] = true
			mu.Unlock()
		}
		return nil
	})
	if err != nil {
		return res, err
	}
	builds := sortedKeys(buildIDs)
	if _, err := f.copyDoc(ctx, "/v1/builders", buildersFile); errs.Is(err, errs.NotFound) {
		p.log.Info("mirror: the origin serves no builders: no verdicts or attestations mirrored")
		builds = nil
	} else if err != nil {
		return res, err
	}
	missing := map[string]bool{}
	err = parallel(ctx, p.o.Parallel, builds, func(ctx context.Context, id string) error {
		found, err := p.build(ctx, id)
		if err == nil && !found {
			mu.Lock()
			missing[id] = true
			mu.Unlock()
		}
		return err
	})
	if err != nil {
		return res, err
	}
	builds = slices.DeleteFunc(builds, func(id string) bool { return missing[id] })

	// Released deposits: manifests, public files, receipts.
	n, err := p.deposits(ctx)
	if err != nil {
		return res, err
	}
	res.Deposits = n

	// The log: its tiles and entry bundles up to the checkpoint.
	var logSize int64
	if checkpoint != nil {
		info, err := f.copyDoc(ctx, "/v1/log", logInfoFile)
		if err != nil {
			return res, err
		}
		_ = info
		_, size, _, err := verify.ParseBody(checkpointBody(checkpoint))
		if err != nil {
			return res, errs.Wrap(errs.Invalid, err, "mirror: the origin's log checkpoint")
		}
		logSize = size
		if err := parallel(ctx, p.o.Parallel, tilePaths(uint64(size)), func(ctx context.Context, t string) error {
			return f.file(ctx, "/"+LogDir+"/"+t, path.Join(LogDir, t), "", -1)
		}); err != nil {
			return res, err
		}
	}
	res.LogSize = logSize

	// fwupd: cabinets first, then the metadata and its Jcat file of one
	// generation.
	fwMeta, fwJcat, err := p.fwupd(ctx)
	if err != nil {
		return res, err
	}

	// Pages and feeds: a snapshot for owners to browse.
	if err := p.pages(ctx, builds); err != nil {
		return res, err
	}
	if _, err := f.copyDoc(ctx, "/feeds/releases.atom", "feeds/releases.atom"); err != nil && !errs.Is(err, errs.NotFound) {
		return res, err
	}

	// Last: what points at everything above.
	if fwMeta != nil {
		if err := f.save(FwupdDir+"/firmware.xml.zst", fwMeta); err != nil {
			return res, err
		}
		if err := f.save(FwupdDir+"/firmware.xml.zst.jcat", fwJcat); err != nil {
			return res, err
		}
	}
	if err := f.save(path.Join(TUFDir, "root.json"), rootJSON); err != nil {
		return res, err
	}
	if err := f.save(path.Join(TUFDir, "timestamp.json"), timestamp); err != nil {
		return res, err
	}
	if checkpoint != nil {
		if err := f.save(path.Join(LogDir, "checkpoint"), checkpoint); err != nil {
			return res, err
		}
	}
	st, _ := json.MarshalIndent(State{Origin: f.base, PulledAt: p.o.Now().UTC().Format(time.RFC3339), Files: int(f.files.Load() + f.kept.Load()), Bytes: f.bytes.Load()}, "", "  ")
	// The record of this pull is not a file of the registry: not counted.
	full := filepath.Join(f.dir, StateFile)
	if err := os.WriteFile(full+".tmp", append(st, '\n'), 0o644); err != nil {
		return res, fmt.Errorf("mirror: %w", err)
	}
	if err := os.Rename(full+".tmp", full); err != nil {
		return res, fmt.Errorf("mirror: %w", err)
	}
	return res, nil
}

// immutableDoc copies a file whose name never changes content (a version
// of TUF metadata) unless present, and returns its bytes.
func (p *puller) immutableDoc(ctx context.Context, urlPath, rel string) ([]byte, error) {
	if err := p.f.file(ctx, urlPath, rel, "", -1); err != nil {
		return nil, err
	}
	return readMirror(p.f.dir, rel)
}

// build copies a build's verdict and each result's attestation and
// buildinfo, checked against the digests the build names.
// It reports false when the origin serves no such build.
func (p *puller) build(ctx context.Context, id string) (bool, error) {
	b, err := p.f.copyDoc(ctx, "/v1/builds/"+url.PathEscape(id), buildFile(id))
	if errs.Is(err, errs.NotFound) {
		// A release a registry carried on from another's mirror names a
		// build only the other ran: its verdict is in that mirror.
		p.log.Info("mirror: the origin serves no build of a release; its verdict stays with the registry that built it", "build", id)
		return false, nil
	}
	if err != nil {
		return false, err
	}
	var bd buildDoc
	if err := json.Unmarshal(b, &bd); err != nil {
		return false, errs.Wrap(errs.Invalid, err, "mirror: build %s", id)
	}
	for _, r := range bd.Results {
		if !safeID(r.JobID) {
			continue
		}
		base := "/v1/builds/" + url.PathEscape(id) + "/jobs/" + url.PathEscape(r.JobID)
		if sum, ok := strings.CutPrefix(r.Attestation, "sha256:"); ok {
			if err := p.f.file(ctx, base+"/attestation", attestationFile(id, r.JobID), sum, -1); err != nil {
				return false, err
			}
		}
		if sum, ok := strings.CutPrefix(r.BuildInfo, "sha256:"); ok {
			if err := p.f.file(ctx, base+"/buildinfo", buildInfoFile(id, r.JobID), sum, -1); err != nil {
				return false, err
			}
		}
	}
	return true, nil
}

// buildDoc is the part of a build's JSON a mirror reads.
type buildDoc struct {
	ID      string `json:"id"`
	Results []struct {
		JobID       string `json:"job_id"`
		BuilderID   string `json:"builder_id"`
		Attestation string `json:"attestation"`
		BuildInfo   string `json:"buildinfo"`
		Outputs     []struct {
			Path   string `json:"path"`
			Digest string `json:"digest"`
		} `json:"outputs"`
		Failed bool `json:"failed"`
	} `json:"results"`
}

// deposits copies every released deposit: its manifest, its receipt, and
// the files of the public rights class (the only ones the origin serves
// to anyone; build-only and private files are never asked for).
func (p *puller) deposits(ctx context.Context) (int, error) {
	f := p.f
	prods, err := f.copyDoc(ctx, "/v1/products", productsFile)
	if errs.Is(err, errs.NotFound) {
		p.log.Info("mirror: the origin serves no products: no deposits mirrored")
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	var pl struct {
		Products []struct {
			ID string `json:"id"`
		} `json:"products"`
	}
	if err := json.Unmarshal(prods, &pl); err != nil {
		return 0, errs.Wrap(errs.Invalid, err, "mirror: /v1/products")
	}
	var deps []wire.Deposit
	seen := map[string]bool{}
	for _, pr := range pl.Products {
		if !safeID(pr.ID) {
			continue
		}
		b, err := f.copyDoc(ctx, "/v1/products/"+url.PathEscape(pr.ID), productFile(pr.ID))
		if err != nil {
			return 0, err
		}
		_ = b
		lb, _, err := f.get(ctx, "/v1/deposits?state=released&limit=1000&product="+url.QueryEscape(pr.ID))
		if err != nil {
			return 0, err
		}
		var dl struct {
			Deposits []wire.Deposit `json:"deposits"`
		}
		if err := json.Unmarshal(lb, &dl); err != nil {
			return 0, errs.Wrap(errs.Invalid, err, "mirror: deposits of %s", pr.ID)
		}
		for _, d := range dl.Deposits {
			if d.State == wire.Released && safeID(d.ID) && !seen[d.ID] {
				seen[d.ID] = true
				deps = append(deps, d)
			}
		}
	}
	if _, err := f.copyDoc(ctx, "/v1/escrow/receipt-key", receiptKeyFile); err != nil {
		return 0, err
	}
	list, _ := json.MarshalIndent(map[string]any{"deposits": deps}, "", "  ")
	if err := f.save(depositsFile, list); err != nil {
		return 0, err
	}
	err = parallel(ctx, p.o.Parallel, deps, func(ctx context.Context, d wire.Deposit) error {
		b, err := f.copyDoc(ctx, "/v1/deposits/"+url.PathEscape(d.ID), depositFile(d.ID))
		if err != nil {
			return err
		}
		var full wire.Deposit
		if err := json.Unmarshal(b, &full); err != nil {
			return errs.Wrap(errs.Invalid, err, "mirror: deposit %s", d.ID)
		}
		if _, err := f.copyDoc(ctx, "/v1/deposits/"+url.PathEscape(d.ID)+"/receipt", receiptFile(d.ID)); err != nil && !errs.Is(err, errs.NotFound) {
			return err
		}
		for _, e := range full.Manifest {
			if e.IsLink() || !publicEntry(e.Rights) || relpath.Check(e.Path) != nil {
				continue
			}
			u := "/v1/deposits/" + url.PathEscape(d.ID) + "/files/" + escapePath(e.Path)
			err := f.file(ctx, u, depositFilePath(d.ID, e.Path), e.SHA256, e.Size)
			if err != nil && !(e.Rights == "" && errs.Is(err, errs.NotFound)) {
				return err
			}
		}
		return nil
	})
	return len(deps), err
}

// publicEntry says whether a manifest entry's rights class lets it be
// mirrored: public, or no class at all (a deposit released before classes
// existed, which the origin serves whole; the origin's answer decides).
func publicEntry(r any) bool {
	s := fmt.Sprint(r)
	return s == "public" || s == ""
}

func escapePath(p string) string {
	parts := strings.Split(p, "/")
	for i := range parts {
		parts[i] = url.PathEscape(parts[i])
	}
	return strings.Join(parts, "/")
}

// fwupd copies the cabinets the current metadata names and returns the
// metadata and the Jcat file of the same generation, for the caller to
// write last. A registry without the remote returns nils.
func (p *puller) fwupd(ctx context.Context) ([]byte, []byte, error) {
	f := p.f
	meta, h, err := f.get(ctx, "/fwupd/firmware.xml.zst")
	if errs.Is(err, errs.NotFound) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	var jcat []byte
	if gen := h.Get("X-Fwupd-Generation"); gen != "" && safeID(gen) {
		m2, _, err := f.get(ctx, "/fwupd/generations/"+gen+"/firmware.xml.zst")
		if err != nil {
			return nil, nil, err
		}
		meta = m2
		if jcat, _, err = f.get(ctx, "/fwupd/generations/"+gen+"/firmware.xml.zst.jcat"); err != nil {
			return nil, nil, err
		}
	} else if jcat, _, err = f.get(ctx, "/fwupd/firmware.xml.zst.jcat"); err != nil {
		return nil, nil, err
	}
	cabs, err := cabsOf(meta)
	if err != nil {
		return nil, nil, err
	}
	// The remote's .conf names where the mirror is served, when it is
	// known, so the remote works without the origin; else the origin's.
	if err := optionalDoc(ctx, f, remoteconf.CAPath, FwupdDir+"/"+path.Base(remoteconf.CAPath)); err != nil {
		return nil, nil, err
	}
	if p.o.PublicURL != "" {
		branch := ""
		if len(cabs) > 0 {
			branch = cabs[0].Branch
		}
		if err := f.save(FwupdDir+"/"+path.Base(remoteconf.ConfPath), []byte(remoteconf.Mirror(p.o.PublicURL, p.o.From, branch))); err != nil {
			return nil, nil, err
		}
	} else if err := optionalDoc(ctx, f, remoteconf.ConfPath, FwupdDir+"/"+path.Base(remoteconf.ConfPath)); err != nil {
		return nil, nil, err
	}
	err = parallel(ctx, p.o.Parallel, cabs, func(ctx context.Context, c cabRef) error {
		return f.file(ctx, "/fwupd/cabs/"+url.PathEscape(c.Name), FwupdDir+"/cabs/"+c.Name, c.SHA256, -1)
	})
	return meta, jcat, err
}

// cabRef is a cabinet the fwupd metadata names, with the sha256 of the
// container it states.
type cabRef struct{ Name, SHA256, Branch string }

// optionalDoc copies a document the origin may not serve.
func optionalDoc(ctx context.Context, f *fetcher, urlPath, rel string) error {
	if _, err := f.copyDoc(ctx, urlPath, rel); err != nil && !errs.Is(err, errs.NotFound) {
		return err
	}
	return nil
}

// cabsOf reads the cabinets the metadata names.
func cabsOf(zst []byte) ([]cabRef, error) {
	dec, err := zstd.NewReader(nil, zstd.WithDecoderMaxMemory(256<<20))
	if err != nil {
		return nil, err
	}
	defer dec.Close()
	xmlb, err := dec.DecodeAll(zst, nil)
	if err != nil {
		return nil, errs.Wrap(errs.Invalid, err, "mirror: the fwupd metadata is not zstd")
	}
	return parseCabs(xmlb)
}

// pages copies the public pages (home, each product, each mirrored build)
// and the static files they use, as NAME.html for any web server that
// tries $uri.html.
func (p *puller) pages(ctx context.Context, builds []string) error {
	f := p.f
	if _, err := f.copyDoc(ctx, "/", "index.html"); errs.Is(err, errs.NotFound) {
		p.log.Info("mirror: the origin serves no pages")
		return nil
	} else if err != nil {
		return err
	}
	for _, s := range []string{"site.css", "site.js"} {
		if _, err := f.copyDoc(ctx, "/static/"+s, "static/"+s); err != nil && !errs.Is(err, errs.NotFound) {
			return err
		}
	}
	b, err := readMirror(f.dir, productsFile)
	if err != nil && !isNotExist(errors.Unwrap(err)) {
		return err
	}
	var pl struct {
		Products []struct {
			ID string `json:"id"`
		} `json:"products"`
	}
	_ = json.Unmarshal(b, &pl)
	var ps []string
	for _, pr := range pl.Products {
		if safeID(pr.ID) {
			ps = append(ps, "/products/"+pr.ID)
		}
	}
	for _, id := range builds {
		ps = append(ps, "/builds/"+id)
	}
	return parallel(ctx, p.o.Parallel, ps, func(ctx context.Context, page string) error {
		_, err := f.copyDoc(ctx, strings.ReplaceAll(url.PathEscape(page), "%2F", "/"), strings.TrimPrefix(page, "/")+".html")
		return err
	})
}

// tilePaths are the C2SP tiles and entry bundles of a tree of size n.
func tilePaths(n uint64) []string {
	var out []string
	full, rest := n/256, uint8(n%256)
	for i := uint64(0); i < full; i++ {
		out = append(out, layout.EntriesPath(i, 0))
	}
	if rest > 0 {
		out = append(out, layout.EntriesPath(full, rest))
	}
	for level, w := uint64(0), n; w > 0; level, w = level+1, w/256 {
		full, rest := w/256, uint8(w%256)
		for i := uint64(0); i < full; i++ {
			out = append(out, layout.TilePath(level, i, 0))
		}
		if rest > 0 {
			out = append(out, layout.TilePath(level, full, rest))
		}
		if w < 256 {
			break
		}
	}
	return out
}

// checkpointBody is the text of a signed note, before its signatures.
func checkpointBody(note []byte) string {
	s := string(note)
	if i := strings.Index(s, "\n\n"); i >= 0 {
		return s[:i+1]
	}
	return s
}

// coveringCheckpoint reads the origin's witnessed checkpoint (nil when it
// serves no log) and, when the targets cite log entries, waits up to
// o.LogWait for witnesses to cosign one that covers them all: a registry
// signs an entry's index into its targets once the log holds it, a few
// seconds before witnesses cosign it.
func (p *puller) coveringCheckpoint(ctx context.Context, all []SignedTarget) ([]byte, error) {
	cited, citing := newestCitedEntry(all)
	deadline := time.Now().Add(p.o.LogWait)
	for {
		checkpoint, _, err := p.f.get(ctx, "/log/checkpoint")
		if err != nil && !errs.Is(err, errs.NotFound) {
			return nil, fmt.Errorf("mirror: the origin's log checkpoint: %w", err)
		}
		if !citing {
			return checkpoint, nil
		}
		size := int64(-1)
		if checkpoint != nil {
			if _, n, _, err := verify.ParseBody(checkpointBody(checkpoint)); err == nil {
				size = n
			}
		}
		if cited < size {
			return checkpoint, nil
		}
		if !time.Now().Before(deadline) {
			return nil, errs.E(errs.Unavailable, "mirror: the origin's targets cite log entry %d, which its witnessed checkpoint (size %d) did not cover within %s; pull again once it does (nothing was pointed at)",
				cited, max(size, 0), p.o.LogWait)
		}
		p.log.Info("mirror: waiting for a witnessed checkpoint that covers every log entry the targets cite", "entry", cited, "log_size", max(size, 0))
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// newestCitedEntry is the highest log index a target signs as its
// release's publication entry.
func newestCitedEntry(ts []SignedTarget) (int64, bool) {
	best, ok := int64(-1), false
	for _, t := range ts {
		if t.Meta.Log != nil && t.Meta.Log.Index > best {
			best, ok = t.Meta.Log.Index, true
		}
	}
	return best, ok
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
