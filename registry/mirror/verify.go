package mirror

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/afterlife-oss/afterlife/builder/attest"
	"github.com/afterlife-oss/afterlife/builder/keys"
	"github.com/afterlife-oss/afterlife/escrow/manifest"
	"github.com/afterlife-oss/afterlife/escrow/receipt"
	"github.com/afterlife-oss/afterlife/escrow/wire"
	"github.com/afterlife-oss/afterlife/registry/device"
	"github.com/afterlife-oss/afterlife/registry/translog/verify"
)

// Failure is one file of a mirror that did not verify, and why.
type Failure struct {
	File   string `json:"file"`
	Reason string `json:"reason"`
}

// Report is what Verify found.
type Report struct {
	RootVersion      int64     `json:"root_version"`
	Timestamp        int64     `json:"timestamp_version"`
	TimestampExpires time.Time `json:"timestamp_expires"`
	Expired          bool      `json:"expired"`
	Targets          int       `json:"targets"`
	Attestations     int       `json:"attestations"`
	Deposits         int       `json:"deposits"`
	DepositFiles     int       `json:"deposit_files"`
	LogSize          int64     `json:"log_size"`
	LogPolicyFrom    string    `json:"log_policy_from,omitempty"` // "root" or "api/log.json"
	LifecycleDocs    int       `json:"lifecycle_documents"`       // support-period documents under api/products/
	FwupdCabs        int       `json:"fwupd_cabs"`
	FwupdCAFrom      string    `json:"fwupd_ca_from,omitempty"` // the mirrored CA, when none was given
	Failures         []Failure `json:"failures,omitempty"`
	// Signed are the targets the verified metadata signs, by target path
	// (for a re-homing import to hold the mirror's unsigned copies to).
	Signed map[string]SignedTarget `json:"-"`
}

// OK reports whether every file verified.
func (r *Report) OK() bool { return len(r.Failures) == 0 }

func (r *Report) fail(file, format string, args ...any) {
	r.Failures = append(r.Failures, Failure{File: file, Reason: fmt.Sprintf(format, args...)})
}

// Verify checks the mirror in dir offline, trusting only the root
// pinned (TUF root metadata, any version the mirror holds or an older
// one): it walks the root chain with go-tuf's metadata API, checks every
// metadata signature and version, every target's length and sha256,
// every attestation's signature by its builder's key, released deposits'
// manifests and receipts against their files, and the log: the
// checkpoint's signatures, every tile and entry bundle against the tree
// it signs, and that it covers the publication of every release the
// targets sign. It names every file that fails, and says how fresh the
// newest timestamp is at now. An error is returned only when the mirror
// cannot be read at all.
func Verify(ctx context.Context, dir string, pinned []byte, now time.Time) (*Report, error) {
	return VerifyWith(ctx, VerifyOptions{Dir: dir, Root: pinned, Now: now})
}

// VerifyOptions are what VerifyWith checks a mirror against.
type VerifyOptions struct {
	Dir  string
	Root []byte // the pinned TUF root
	// FwupdCA is the fwupd remote's CA certificate (PEM) the owner trusts;
	// nil checks the metadata against the mirrored certificate.
	FwupdCA []byte
	Now     time.Time
}

// VerifyWith is Verify with the fwupd CA given.
func VerifyWith(ctx context.Context, o VerifyOptions) (*Report, error) {
	dir, pinned, now := o.Dir, o.Root, o.Now
	r := &Report{}
	v := &verifier{dir: dir, r: r, now: now}
	root, err := v.rootChain(pinned)
	if err != nil {
		return nil, err
	}
	if root == nil {
		return r, nil
	}
	releases := v.tuf(root)
	v.attestations(ctx)
	v.deposits()
	v.lifecycle(v.signed)
	v.log(root, releases)
	v.fwupd(o.FwupdCA)
	slices.SortStableFunc(r.Failures, func(a, b Failure) int { return strings.Compare(a.File, b.File) })
	return r, nil
}

type verifier struct {
	dir string
	r   *Report
	now time.Time
	// cited are the log entries targets sign as their release's
	// publication: index → the release and the target citing it.
	cited map[int64]citation
	// signed are the targets the metadata signs, by name.
	signed map[string]SignedTarget
}

type citation struct{ release, target string }

func (v *verifier) read(rel string) ([]byte, bool) {
	b, err := os.ReadFile(filepath.Join(v.dir, filepath.FromSlash(rel)))
	if err != nil {
		if isNotExist(err) {
			v.r.fail(rel, "missing")
		} else {
			v.r.fail(rel, "unreadable: %v", err)
		}
		return nil, false
	}
	return b, true
}

// rootChain walks from 1.root.json to the newest root the mirror holds,
// each version signed by a threshold of the previous version's root keys
// and of its own; the pinned root must be one of them.
func (v *verifier) rootChain(pinned []byte) (*metadata.Metadata[metadata.RootType], error) {
	pin, err := (&metadata.Metadata[metadata.RootType]{}).FromBytes(pinned)
	if err != nil {
		return nil, fmt.Errorf("mirror: the pinned root is not TUF root metadata: %w", err)
	}
	if err := pin.VerifyDelegate(metadata.ROOT, pin); err != nil {
		return nil, fmt.Errorf("mirror: the pinned root is not signed by its own root keys: %w", err)
	}
	trusted := pin
	// Versions up to the pinned one must be the pinned one's history.
	name := path.Join(TUFDir, metaName(pin.Signed.Version, "root"))
	if b, ok := v.read(name); ok && string(b) != string(pinned) {
		v.r.fail(name, "differs from the pinned root of the same version")
	}
	for n := pin.Signed.Version + 1; ; n++ {
		name := path.Join(TUFDir, metaName(n, "root"))
		b, err := os.ReadFile(filepath.Join(v.dir, filepath.FromSlash(name)))
		if isNotExist(err) {
			break
		}
		if err != nil {
			v.r.fail(name, "unreadable: %v", err)
			break
		}
		next, err := (&metadata.Metadata[metadata.RootType]{}).FromBytes(b)
		if err == nil {
			if err = trusted.VerifyDelegate(metadata.ROOT, next); err == nil {
				if err = next.VerifyDelegate(metadata.ROOT, next); err == nil && next.Signed.Version != n {
					err = fmt.Errorf("holds version %d", next.Signed.Version)
				}
			}
		}
		if err != nil {
			v.r.fail(name, "not the next root: %v", err)
			return nil, nil
		}
		trusted = next
	}
	if b, ok := v.read(path.Join(TUFDir, "root.json")); ok {
		cur, err := (&metadata.Metadata[metadata.RootType]{}).FromBytes(b)
		if err != nil || cur.Signed.Version != trusted.Signed.Version || trusted.VerifyDelegate(metadata.ROOT, cur) != nil {
			v.r.fail(path.Join(TUFDir, "root.json"), "is not the newest root of the chain (version %d)", trusted.Signed.Version)
		}
	}
	v.r.RootVersion = trusted.Signed.Version
	return trusted, nil
}

// tuf checks the timestamp, the snapshot, targets and every delegated
// bin, and every target file; it returns the release ids the targets
// sign with the sha256 of their files.
func (v *verifier) tuf(root *metadata.Metadata[metadata.RootType]) map[string][]string {
	releases := map[string][]string{}
	tsName := path.Join(TUFDir, "timestamp.json")
	b, ok := v.read(tsName)
	if !ok {
		return releases
	}
	ts, err := (&metadata.Metadata[metadata.TimestampType]{}).FromBytes(b)
	if err == nil {
		err = root.VerifyDelegate(metadata.TIMESTAMP, ts)
	}
	if err != nil {
		v.r.fail(tsName, "bad signature or format: %v", err)
		return releases
	}
	v.r.Timestamp, v.r.TimestampExpires = ts.Signed.Version, ts.Signed.Expires
	v.r.Expired = ts.Signed.IsExpired(v.now)
	snapName, snapMeta, err := snapshotName(ts)
	if err != nil {
		v.r.fail(tsName, "%v", err)
		return releases
	}
	snapName = path.Join(TUFDir, snapName)
	b, ok = v.read(snapName)
	if !ok {
		return releases
	}
	snap, err := (&metadata.Metadata[metadata.SnapshotType]{}).FromBytes(b)
	if err == nil && (snapMeta.Length != 0 || len(snapMeta.Hashes) > 0) {
		err = snapMeta.VerifyLengthHashes(b)
	}
	if err == nil {
		err = root.VerifyDelegate(metadata.SNAPSHOT, snap)
	}
	if err == nil && snap.Signed.Version != snapMeta.Version {
		err = fmt.Errorf("holds version %d, the timestamp names %d", snap.Signed.Version, snapMeta.Version)
	}
	if err != nil {
		v.r.fail(snapName, "%v", err)
		return releases
	}
	check := func(name string, meta *metadata.MetaFiles, verifyWith func(*metadata.Metadata[metadata.TargetsType]) error) *metadata.Metadata[metadata.TargetsType] {
		b, ok := v.read(name)
		if !ok {
			return nil
		}
		t, err := (&metadata.Metadata[metadata.TargetsType]{}).FromBytes(b)
		if err == nil && (meta.Length != 0 || len(meta.Hashes) > 0) {
			err = meta.VerifyLengthHashes(b)
		}
		if err == nil {
			err = verifyWith(t)
		}
		if err == nil && t.Signed.Version != meta.Version {
			err = fmt.Errorf("holds version %d, the snapshot names %d", t.Signed.Version, meta.Version)
		}
		if err != nil {
			v.r.fail(name, "%v", err)
			return nil
		}
		return t
	}
	tm, ok := snap.Signed.Meta["targets.json"]
	if !ok {
		v.r.fail(snapName, "names no targets.json")
		return releases
	}
	targets := check(path.Join(TUFDir, metaName(tm.Version, "targets")), tm, func(t *metadata.Metadata[metadata.TargetsType]) error {
		return root.VerifyDelegate(metadata.TARGETS, t)
	})
	if targets == nil {
		return releases
	}
	all := targetsOf(targets)
	bins, err := delegatedFiles(snap, targets)
	if err != nil {
		v.r.fail(snapName, "%v", err)
	}
	for role, file := range bins {
		bin := check(path.Join(TUFDir, file), snap.Signed.Meta[role+".json"], func(t *metadata.Metadata[metadata.TargetsType]) error {
			return targets.VerifyDelegate(role, t)
		})
		if bin != nil {
			all = append(all, targetsOf(bin)...)
		}
	}
	for _, t := range all {
		rel := targetFile(t.Name, t.SHA256)
		got, size, err := hashFile(filepath.Join(v.dir, filepath.FromSlash(rel)))
		switch {
		case isNotExist(err):
			v.r.fail(rel, "missing (target %s)", t.Name)
		case err != nil:
			v.r.fail(rel, "unreadable: %v", err)
		case size != t.Length || got != t.SHA256:
			v.r.fail(rel, "target %s: %d bytes with sha256 %s, signed %d bytes with sha256 %s", t.Name, size, got, t.Length, t.SHA256)
		}
		if t.Meta.ReleaseID != "" && t.Meta.Kind != "delta" {
			releases[t.Meta.ReleaseID] = append(releases[t.Meta.ReleaseID], t.SHA256)
		}
		if t.Meta.Log != nil {
			if v.cited == nil {
				v.cited = map[int64]citation{}
			}
			v.cited[t.Meta.Log.Index] = citation{release: t.Meta.ReleaseID, target: t.Name}
		}
	}
	v.r.Targets = len(all)
	v.signed = map[string]SignedTarget{}
	for _, t := range all {
		v.signed[t.Name] = t
	}
	v.r.Signed = v.signed
	return releases
}

// attestations checks each mirrored build's attestations: the digest the
// build names, and the signature of the builder the result names.
func (v *verifier) attestations(ctx context.Context) {
	b, err := os.ReadFile(filepath.Join(v.dir, buildersFile))
	if isNotExist(err) {
		return // nothing of the farm mirrored
	}
	if err != nil {
		v.r.fail(buildersFile, "unreadable: %v", err)
		return
	}
	var bl struct {
		Builders []struct {
			ID        string `json:"id"`
			PublicKey string `json:"public_key"`
		} `json:"builders"`
	}
	if err := json.Unmarshal(b, &bl); err != nil {
		v.r.fail(buildersFile, "not a builder list: %v", err)
		return
	}
	pubs := map[string]string{}
	for _, x := range bl.Builders {
		pubs[x.ID] = x.PublicKey
	}
	files, _ := filepath.Glob(filepath.Join(v.dir, APIDir, "builds", "*.json"))
	slices.Sort(files)
	for _, full := range files {
		rel := path.Join(APIDir, "builds", filepath.Base(full))
		b, ok := v.read(rel)
		if !ok {
			continue
		}
		var bd buildDoc
		if err := json.Unmarshal(b, &bd); err != nil || !safeID(bd.ID) {
			v.r.fail(rel, "not a build: %v", err)
			continue
		}
		for _, res := range bd.Results {
			sum, ok := strings.CutPrefix(res.Attestation, "sha256:")
			if !ok || !safeID(res.JobID) {
				continue
			}
			af := attestationFile(bd.ID, res.JobID)
			env, ok := v.read(af)
			if !ok {
				continue
			}
			v.r.Attestations++
			if got := sha256Hex(env); got != sum {
				v.r.fail(af, "sha256 %s, the build names %s", got, sum)
				continue
			}
			pub, err := keys.ParsePublicKey(pubs[res.BuilderID])
			if err != nil {
				v.r.fail(af, "no key of builder %s in %s: %v", res.BuilderID, buildersFile, err)
				continue
			}
			if _, _, err := attest.Verify(ctx, pub, env); err != nil {
				v.r.fail(af, "signature of builder %s: %v", res.BuilderID, err)
			}
		}
	}
}

// deposits checks each mirrored deposit: its manifest digest, each
// mirrored file against its manifest entry (only public files may be
// there), and its receipt's signature and manifest digest.
func (v *verifier) deposits() {
	var key []byte
	if b, err := os.ReadFile(filepath.Join(v.dir, receiptKeyFile)); err == nil {
		var k struct {
			PublicKey string `json:"public_key"`
		}
		if json.Unmarshal(b, &k) == nil {
			key = []byte(k.PublicKey)
		}
	}
	files, _ := filepath.Glob(filepath.Join(v.dir, APIDir, "deposits", "*.json"))
	slices.Sort(files)
	for _, full := range files {
		base := filepath.Base(full)
		if strings.HasSuffix(base, ".receipt.json") {
			continue
		}
		rel := path.Join(APIDir, "deposits", base)
		b, ok := v.read(rel)
		if !ok {
			continue
		}
		var d wire.Deposit
		if err := json.Unmarshal(b, &d); err != nil || !safeID(d.ID) || strings.TrimSuffix(base, ".json") != d.ID {
			v.r.fail(rel, "not a deposit: %v", err)
			continue
		}
		v.r.Deposits++
		if got := manifest.Digest(d.Manifest); got != d.ManifestDigest {
			v.r.fail(rel, "manifest digest %s, the deposit states %s", got, d.ManifestDigest)
		}
		entries := map[string]manifest.Entry{}
		for _, e := range d.Manifest {
			entries[e.Path] = e
		}
		root := filepath.Join(v.dir, APIDir, "deposits", d.ID, "files")
		_ = filepath.WalkDir(root, func(p string, de fs.DirEntry, err error) error {
			if err != nil || de.IsDir() {
				return nil
			}
			sub, _ := filepath.Rel(root, p)
			sub = filepath.ToSlash(sub)
			frel := depositFilePath(d.ID, sub)
			e, listed := entries[sub]
			switch {
			case strings.HasSuffix(sub, partSuffix):
				return nil // an unfinished download
			case !listed:
				v.r.fail(frel, "not in the deposit's manifest")
				return nil
			case !publicEntry(e.Rights):
				v.r.fail(frel, "rights class %s must never be mirrored", e.Rights)
				return nil
			}
			v.r.DepositFiles++
			got, size, err := hashFile(p)
			if err != nil || size != e.Size || got != e.SHA256 {
				v.r.fail(frel, "%d bytes with sha256 %s, the manifest says %d bytes with %s", size, got, e.Size, e.SHA256)
			}
			return nil
		})
		rf := receiptFile(d.ID)
		rb, err := os.ReadFile(filepath.Join(v.dir, filepath.FromSlash(rf)))
		if err != nil || key == nil {
			continue
		}
		pub, err := receipt.ParsePublicKey(key)
		if err != nil {
			v.r.fail(receiptKeyFile, "%v", err)
			continue
		}
		rc, err := receipt.Verify(pub, rb)
		if err != nil {
			v.r.fail(rf, "%v", err)
			continue
		}
		if rc.Deposit != d.ID || rc.ManifestDigest != d.ManifestDigest {
			v.r.fail(rf, "signs deposit %s with manifest %s, the deposit is %s with %s", rc.Deposit, rc.ManifestDigest, d.ID, d.ManifestDigest)
		}
	}
}

// log checks the checkpoint against the log's policy (the root's signed
// afterlife_log field, else the policy the origin stated in api/log.json),
// recomputes the tree from the entry bundles, checks every tile against
// it and the root hash against the checkpoint, and checks that every
// release the targets sign has its publication entry in it.
func (v *verifier) log(root *metadata.Metadata[metadata.RootType], releases map[string][]string) {
	cpName := path.Join(LogDir, "checkpoint")
	cpb, err := os.ReadFile(filepath.Join(v.dir, cpName))
	if isNotExist(err) && len(releases) == 0 {
		return
	}
	if err != nil {
		v.r.fail(cpName, "missing: the mirrored targets cite releases the log must cover")
		return
	}
	pol, from, err := v.logPolicy(root)
	if err != nil {
		v.r.fail(from, "%v", err)
		return
	}
	v.r.LogPolicyFrom = from
	cp, err := pol.Checkpoint(cpb)
	if err != nil {
		v.r.fail(cpName, "%v", err)
		return
	}
	v.r.LogSize = cp.Size
	size := uint64(cp.Size)
	// Entries, bundle by bundle, into the tree's stored hashes.
	var stored []tlog.Hash
	hr := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			if x < 0 || x >= int64(len(stored)) {
				return nil, fmt.Errorf("no stored hash %d", x)
			}
			out[i] = stored[x]
		}
		return out, nil
	})
	published := map[string]map[string]bool{} // release → sha256s
	var n int64
	for _, t := range tilePaths(size) {
		if !strings.HasPrefix(t, "tile/entries/") {
			continue
		}
		rel := path.Join(LogDir, t)
		b, ok := v.read(rel)
		if !ok {
			return
		}
		for len(b) > 0 {
			if len(b) < 2 || len(b) < 2+int(b[0])<<8|int(b[1]) {
				v.r.fail(rel, "truncated entry bundle")
				return
			}
			l := int(b[0])<<8 | int(b[1])
			entry := b[2 : 2+l]
			b = b[2+l:]
			hs, err := tlog.StoredHashes(n, entry, hr)
			if err != nil {
				v.r.fail(rel, "%v", err)
				return
			}
			stored = append(stored, hs...)
			n++
			var e struct {
				Type      string `json:"type"`
				Release   string `json:"release"`
				Artifacts []struct {
					Digest string `json:"digest"`
				} `json:"artifacts"`
			}
			if json.Unmarshal(entry, &e) == nil && publication(e.Type) {
				m := map[string]bool{}
				for _, a := range e.Artifacts {
					m[strings.TrimPrefix(a.Digest, "sha256:")] = true
				}
				published[e.Release] = m
			}
			if c, ok := v.cited[n-1]; ok && (!publication(e.Type) || e.Release != c.release) {
				v.r.fail(rel, "entry %d, which target %s signs as the publication of release %s, is a %s of %q", n-1, c.target, c.release, e.Type, e.Release)
			}
		}
	}
	if n != cp.Size {
		v.r.fail(path.Join(LogDir, "tile/entries"), "the entry bundles hold %d entries, the checkpoint %d", n, cp.Size)
		return
	}
	th, err := tlog.TreeHash(cp.Size, hr)
	if err != nil || th != cp.Hash {
		v.r.fail(path.Join(LogDir, "tile/entries"), "the entries hash to %v, the checkpoint signs %v", th, cp.Hash)
		return
	}
	for _, t := range tilePaths(size) {
		if strings.HasPrefix(t, "tile/entries/") {
			continue
		}
		rel := path.Join(LogDir, t)
		b, ok := v.read(rel)
		if !ok {
			continue
		}
		tile, err := parseTilePath(t)
		if err != nil {
			v.r.fail(rel, "%v", err)
			continue
		}
		want, err := tlog.ReadTileData(tile, hr)
		if err != nil || string(want) != string(b) {
			v.r.fail(rel, "is not the tile of the tree the checkpoint signs")
		}
	}
	for idx, c := range v.cited {
		if idx >= cp.Size {
			v.r.fail(cpName, "does not cover entry %d, which target %s signs as the publication of release %s", idx, c.target, c.release)
		}
	}
	ids := make([]string, 0, len(releases))
	for id := range releases {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		arts, ok := published[id]
		if !ok {
			v.r.fail(cpName, "does not cover the publication of release %s, which the targets sign", id)
			continue
		}
		for _, sum := range releases[id] {
			if !arts[sum] {
				v.r.fail(cpName, "the log's publication of release %s does not name its signed file with sha256 %s", id, sum)
			}
		}
	}
}

// publication says whether a log entry type publishes a release: its
// publication, or its import by a registry that carried the one that
// published it on (docs/mirror.md, "Taking a registry over").
func publication(typ string) bool { return typ == "release.published" || typ == "release.imported" }

func (v *verifier) logPolicy(root *metadata.Metadata[metadata.RootType]) (verify.Policy, string, error) {
	var pol verify.Policy
	if raw, ok := root.Signed.UnrecognizedFields[device.LogPolicyField]; ok {
		b, _ := json.Marshal(raw)
		if err := json.Unmarshal(b, &pol); err != nil {
			return pol, path.Join(TUFDir, "root.json"), fmt.Errorf("the root's %s field: %v", device.LogPolicyField, err)
		}
		return pol, "root", nil
	}
	b, err := os.ReadFile(filepath.Join(v.dir, logInfoFile))
	if err != nil {
		return pol, logInfoFile, fmt.Errorf("missing: without it or a log policy in the root the checkpoint cannot be checked")
	}
	var info struct {
		Policy verify.Policy `json:"policy"`
	}
	if err := json.Unmarshal(b, &info); err != nil {
		return pol, logInfoFile, err
	}
	return info.Policy, logInfoFile, nil
}
