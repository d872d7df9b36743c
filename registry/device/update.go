package device

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/config"
	"github.com/theupdateframework/go-tuf/v2/metadata/fetcher"
	"github.com/theupdateframework/go-tuf/v2/metadata/updater"

	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/httpclient"
	"github.com/afterlife-oss/afterlife/internal/relpath"
	"github.com/afterlife-oss/afterlife/registry/version"
)

// Result says what Update did.
type Result struct {
	Updated   bool   // false: already up to date, nothing installed
	Product   string // of the installed release
	Version   string // the version now active
	ReleaseID string
	SHA256    string // hex digest of the installed file
	Slot      string // "a" or "b", the slot now active
	// ReportErr is set when the install succeeded but the success report
	// did not reach the registry.
	ReportErr error
	// Pending is set when the device reboots into the new slot; the
	// health check and the confirmation happen when the client runs next.
	Pending bool
	// RolledBack is set when the new slot failed (Reason says how) and
	// the previous one is active again.
	RolledBack bool
	Reason     string
	// Skipped says why an offered release was not installed (it failed on
	// this device before).
	Skipped string
	// Yanked, when set, says the release the device ran before this call
	// was yanked, and why (the signed metadata says so). With Updated
	// false the device found nothing to move to and still runs it.
	Yanked *YankStatus
	// Delta says the update was installed from a delta, not the full
	// image.
	Delta bool
}

// Release is what a slot holds, in its release.json.
type Release struct {
	Product   string    `json:"product"`
	Version   string    `json:"version"`
	ReleaseID string    `json:"release_id"`
	File      string    `json:"file"`
	SHA256    string    `json:"sha256"`
	Length    int64     `json:"length"`
	Installed time.Time `json:"installed"`
}

// downloadTries bounds how often an interrupted download resumes.
const downloadTries = 5

// candidate is a target the signed metadata allows this device to install.
type candidate struct {
	info *metadata.TargetFiles
	meta TargetMeta
}

// Update finds the newest release the signed metadata allows this device
// to install and, when there is one, downloads, verifies, installs and
// activates it, then reports the outcome to the registry. Failures after
// the release was accepted (download, verification, install) are reported
// too.
//
// current is the version the device runs; "" means the version in the
// active slot ("0" when nothing is installed). The update API's offer is
// only a hint of which target to look at: product, version, channel, the
// community flag, the minimum version and the file's length and digest all
// come from the registry's signed TUF metadata. Without the update API (a
// static mirror answers 404) or with Config.FromMetadata, Update finds the
// release in the metadata alone, through the product's signed release list.
func Update(ctx context.Context, cfg Config, current string) (*Result, error) {
	c, err := newClient(cfg, true)
	if err != nil {
		return nil, err
	}
	return c.update(ctx, current)
}

// installedYank is the yank of the release in the active slot, nil when
// it was not yanked (or nothing is installed, or the version the caller
// named is not the installed one).
func (c *client) installedYank(id identity) (*YankStatus, error) {
	installed, err := installedRelease(c.cfg.InstallDir)
	if err != nil || installed == nil || installed.Version != id.current {
		return nil, err
	}
	up, err := c.updater()
	if err != nil {
		return nil, err
	}
	st, err := yankOf(up, installed)
	if err != nil || !st.Yanked {
		return nil, err
	}
	return st, nil
}

// identity is the device as its own state describes it: the product comes
// from the configuration or the active slot, never from the registry's
// offer.
func (c *client) identity(current string) (identity, error) {
	id := identity{deviceID: c.st.DeviceID, product: c.st.Product, channel: c.st.Channel, current: current, accept: c.st.AcceptCommunity,
		bucket: Bucket(c.st.InstallID)}
	if id.deviceID == "" {
		return id, errs.E(errs.Invalid, "device: no device id: give one with --id (config key device_id)")
	}
	if id.channel == "" {
		id.channel = channelStable
	}
	if id.channel != channelStable && id.channel != channelTesting {
		return id, errs.E(errs.Invalid, "device: channel %q: want stable or testing (--channel, config key channel)", id.channel)
	}
	installed, err := installedRelease(c.cfg.InstallDir)
	if err != nil {
		return id, err
	}
	if installed != nil {
		if id.product != "" && installed.Product != id.product {
			return id, errs.E(errs.Conflict, "device: %s holds product %s, the device is configured for %s (--product, config key product)", c.cfg.InstallDir, installed.Product, id.product)
		}
		id.product = installed.Product
	}
	if id.current == "" {
		id.current = "0"
		if installed != nil {
			id.current = installed.Version
		}
	}
	if !version.Valid(id.current) {
		return id, errs.E(errs.Invalid, "device: current version %q is not a version (e.g. 1.4.2; --current)", id.current)
	}
	return id, nil
}

// find returns the target to install, nil when the device is up to date.
func (c *client) find(ctx context.Context, id identity) (*candidate, error) {
	if !c.cfg.FromMetadata {
		offer, err := c.check(ctx, id.current)
		switch {
		case errs.Is(err, errs.NotFound):
			c.log.Info("device: the registry has no update API; looking in the signed metadata alone", "err", err)
		case err != nil:
			return nil, err
		case offer == nil:
			return nil, nil
		default:
			return c.fromOffer(id, offer)
		}
	}
	return c.fromMetadata(id)
}

// fromOffer looks up the offered target in the signed metadata and decides
// on the signed fields alone.
func (c *client) fromOffer(id identity, offer *Offer) (*candidate, error) {
	if relpath.Check(offer.Target.Path) != nil {
		return nil, errs.E(errs.Invalid, "device: offered target path %q is not valid", offer.Target.Path)
	}
	up, err := c.updater()
	if err != nil {
		return nil, err
	}
	cand, err := lookup(up, offer.Target.Path)
	if err != nil {
		return nil, err
	}
	m := cand.meta
	if offer.Product != m.Product || offer.Version != m.Version || offer.Channel != m.Channel || offer.Community != *m.Community || offer.MinVersion != m.MinVersion {
		c.log.Warn("device: the update offer disagrees with the signed metadata; only the signed fields count",
			"target", cand.info.Path, "offer_product", offer.Product, "signed_product", m.Product,
			"offer_version", offer.Version, "signed_version", m.Version, "offer_channel", offer.Channel, "signed_channel", m.Channel,
			"offer_community", offer.Community, "signed_community", *m.Community)
	}
	if err := id.acceptTarget(cand.info.Path, m); err != nil {
		return nil, err
	}
	return cand, nil
}

// fromMetadata finds the update in the product's signed release list: the
// newest release on the device's channel that is newer than what it runs,
// whose minimum version it meets and whose signed rollout reaches its
// bucket. A device running a yanked release that finds nothing newer
// takes the newest older one instead, which its signed fields must allow
// (TargetMeta.RollbackFromYanked).
func (c *client) fromMetadata(id identity) (*candidate, error) {
	if id.product == "" {
		return nil, errs.E(errs.Invalid, "device: to update from the TUF metadata alone the device must know its product: "+
			"give it with --product (config key product) or install once from a registry with an update API")
	}
	up, err := c.updater()
	if err != nil {
		return nil, err
	}
	listPath := ReleaseListPath(id.product)
	info, err := up.GetTargetInfo(listPath)
	if err != nil {
		return nil, errs.Wrap(errs.NotFound, err, "device: the signed metadata has no release list for product %s (%s)", id.product, listPath)
	}
	var list ReleaseList
	if info.Custom == nil || json.Unmarshal(*info.Custom, &list) != nil || list.Schema != SchemaVersion || list.Product != id.product {
		return nil, errs.E(errs.Invalid, "device: %s is not a signed release list of product %s", listPath, id.product)
	}
	usable := func(e ListedTarget) bool {
		return version.Valid(e.Version) && channelAccepts(id.channel, e.Channel) &&
			(e.MinVersion == "" || version.Compare(id.current, e.MinVersion) >= 0)
	}
	entries := slices.Clone(list.Releases)
	entries = slices.DeleteFunc(entries, func(e ListedTarget) bool { return !usable(e) || version.Compare(e.Version, id.current) <= 0 })
	if len(entries) == 0 && slices.ContainsFunc(list.Yanked, func(y YankedTarget) bool { return y.Version == id.current }) {
		entries = slices.DeleteFunc(slices.Clone(list.Releases), func(e ListedTarget) bool { return !usable(e) || version.Compare(e.Version, id.current) >= 0 })
	}
	slices.SortStableFunc(entries, func(a, b ListedTarget) int { return version.Compare(b.Version, a.Version) })
	now := time.Now()
	for _, e := range entries {
		if relpath.Check(e.Target) != nil {
			return nil, errs.E(errs.Invalid, "device: the release list of %s names an invalid target %q", id.product, e.Target)
		}
		cand, err := lookup(up, e.Target)
		if err != nil {
			return nil, err
		}
		if cand.meta.Version != e.Version {
			return nil, errs.E(errs.Invalid, "device: the release list of %s says %s is version %s, its signed fields say %s", id.product, e.Target, e.Version, cand.meta.Version)
		}
		if !cand.meta.Rollout.Reaches(id.bucket, now) {
			c.log.Info("device: the signed rollout of a release does not reach this device yet", "version", e.Version, "bucket", id.bucket)
			continue
		}
		if err := id.acceptTarget(cand.info.Path, cand.meta); err != nil {
			return nil, err
		}
		return cand, nil
	}
	return nil, nil
}

func lookup(up *updater.Updater, p string) (*candidate, error) {
	info, err := up.GetTargetInfo(p)
	if err != nil {
		return nil, errs.Wrap(errs.NotFound, err, "device: %s is not in the signed TUF metadata", p)
	}
	if len(info.Hashes["sha256"]) != sha256.Size {
		return nil, errs.E(errs.Invalid, "device: TUF metadata for %s has no sha256", info.Path)
	}
	m, err := signedMeta(info)
	if err != nil {
		return nil, err
	}
	return &candidate{info: info, meta: m}, nil
}

func (c *client) install(ctx context.Context, cand *candidate) (*Result, error) {
	if err := c.checkLogged(ctx, cand); err != nil {
		return nil, err
	}
	info, m := cand.info, cand.meta
	want := hex.EncodeToString(info.Hashes["sha256"])
	part, err := c.fromDelta(ctx, cand, want)
	if err != nil {
		c.log.Warn("device: the delta update failed; downloading the full image", "err", err)
		part = ""
	}
	viaDelta := part != ""
	if !viaDelta {
		if part, err = c.download(ctx, info, want); err != nil {
			return nil, err
		}
	}
	slot, err := activate(c.cfg.InstallDir, part, Release{
		Product: m.Product, Version: m.Version, ReleaseID: m.ReleaseID,
		File: path.Base(info.Path), SHA256: want, Length: info.Length, Installed: c.now().UTC(),
	})
	if err != nil {
		return nil, err
	}
	_ = os.Remove(part)
	c.log.Info("device updated", "product", m.Product, "version", m.Version, "slot", slot, "sha256", want)
	return &Result{Updated: true, Product: m.Product, Version: m.Version, ReleaseID: m.ReleaseID, SHA256: want, Slot: slot, Delta: viaDelta}, nil
}

// updater runs the TUF client workflow (root rotation, timestamp,
// snapshot, targets, with their rollback and freeze checks) and returns an
// updater ready to look up targets in the hashed bins.
func (c *client) updater() (*updater.Updater, error) {
	if c.up != nil {
		return c.up, nil
	}
	metaDir := filepath.Join(c.cfg.StateDir, tufDir)
	// The newest root the updater verified is cached in metaDir; fall back
	// to the one Init stored.
	root, err := os.ReadFile(filepath.Join(metaDir, rootFile))
	if errors.Is(err, fs.ErrNotExist) {
		root, err = os.ReadFile(filepath.Join(c.cfg.StateDir, rootFile))
	}
	if err != nil {
		return nil, fmt.Errorf("device: read trusted root: %w", err)
	}
	uc, err := config.New(c.tufURL, root)
	if err != nil {
		return nil, fmt.Errorf("device: tuf config: %w", err)
	}
	uc.LocalMetadataDir = metaDir
	uc.LocalTargetsDir = filepath.Join(metaDir, "targets")
	uc.RemoteTargetsURL = c.tufURL + "/targets"
	f := fetcher.NewDefaultFetcher()
	f.SetHTTPClient(c.http)
	uc.Fetcher = f
	up, err := updater.New(uc)
	if err != nil {
		return nil, errs.Wrap(errs.Invalid, err, "device: load trusted root")
	}
	if err := up.Refresh(); err != nil {
		return nil, errs.Wrap(refreshKind(err), err, "device: TUF metadata refresh failed")
	}
	c.up = up
	return up, nil
}

// refreshKind tells a registry that could not be reached (worth trying
// again later) from metadata that failed verification.
func refreshKind(err error) errs.Kind {
	var uerr *url.Error
	if errors.As(err, &uerr) || errors.Is(err, &metadata.ErrDownloadHTTP{}) || errors.Is(err, &metadata.ErrDownload{}) {
		return errs.Unavailable
	}
	return errs.Invalid
}

// targetURL is where a consistent-snapshot repository serves a target:
// <dir>/<sha256>.<basename> under /tuf/targets/.
func (c *client) targetURL(p, sum string) string {
	dir, base := path.Split(p)
	return c.tufURL + "/targets/" + dir + sum + "." + base
}

// download fetches the target into StateDir/downloads/<sha256>.part,
// continuing a partial file with a Range request, and verifies length and
// digest against the TUF metadata. A file that fails verification is
// deleted so the next try starts over.
func (c *client) download(ctx context.Context, info *metadata.TargetFiles, sum string) (string, error) {
	dir := filepath.Join(c.cfg.StateDir, partDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("device: create download dir: %w", err)
	}
	part := filepath.Join(dir, sum+".part")
	u := c.targetURL(info.Path, sum)
	var lastErr error
	for try := 0; try < downloadTries; try++ {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		done, err := c.fetchRange(ctx, u, part, info.Length)
		if err == nil {
			break
		}
		lastErr = err
		c.log.Warn("device: download interrupted; resuming", "url", u, "have", done, "of", info.Length, "err", err)
		if errs.Is(err, errs.Invalid) || errs.Is(err, errs.NotFound) {
			return "", err
		}
		if try == downloadTries-1 {
			return "", errs.Wrap(errs.Unavailable, lastErr, "device: download %s", info.Path)
		}
	}
	if err := verifyFile(part, info.Length, sum); err != nil {
		_ = os.Remove(part)
		_ = os.Remove(part + ".receipt")
		return "", err
	}
	if c.receipt == "" {
		// The whole file was there from an earlier run; so is its receipt.
		if b, err := os.ReadFile(part + ".receipt"); err == nil {
			c.receipt = strings.TrimSpace(string(b))
		}
	}
	_ = os.Remove(part + ".receipt")
	return part, nil
}

// keepReceipt takes the registry's receipt from a download answer (or
// from the redirect that led to it, when the file is served from S3) and
// keeps it beside the partial file, so a download finished by a later
// run still has it.
func (c *client) keepReceipt(resp *http.Response, part string) {
	for r := resp; r != nil; {
		if v := r.Header.Get(receiptHeader); v != "" && len(v) < 200 {
			c.receipt = v
			if err := os.WriteFile(part+".receipt", []byte(v), 0o600); err != nil {
				c.log.Warn("device: could not keep the download receipt", "err", err)
			}
			return
		}
		if r.Request == nil {
			return
		}
		r = r.Request.Response
	}
}

// fetchRange appends the rest of the file to part; it returns how many
// bytes part holds.
func (c *client) fetchRange(ctx context.Context, u, part string, length int64) (int64, error) {
	f, err := os.OpenFile(part, os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return 0, fmt.Errorf("device: open %s: %w", part, err)
	}
	defer f.Close()
	have, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return 0, err
	}
	if have > length {
		if err := f.Truncate(0); err != nil {
			return 0, err
		}
		have, _ = f.Seek(0, io.SeekStart)
	}
	c.progress(have, length)
	if have == length {
		return have, nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return have, err
	}
	if have > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(have, 10)+"-")
	}
	req.Header.Set(installIDHeader, c.st.InstallID)
	resp, err := c.http.Do(req)
	if err != nil {
		return have, err
	}
	defer httpclient.Drain(resp)
	c.keepReceipt(resp, part)
	switch {
	case resp.StatusCode == http.StatusPartialContent && have > 0:
	case resp.StatusCode == http.StatusOK:
		// The server ignored the range: start over.
		if err := f.Truncate(0); err != nil {
			return 0, err
		}
		if have, err = f.Seek(0, io.SeekStart); err != nil {
			return 0, err
		}
	default:
		return have, httpclient.DecodeError(resp, "device: download "+u)
	}
	buf := make([]byte, 64<<10)
	body := io.LimitReader(resp.Body, length-have+1)
	for {
		n, rerr := body.Read(buf)
		if n > 0 {
			if have+int64(n) > length {
				return have, errs.E(errs.Invalid, "device: %s is longer than the signed length %d", u, length)
			}
			if _, err := f.Write(buf[:n]); err != nil {
				return have, fmt.Errorf("device: write %s: %w", part, err)
			}
			have += int64(n)
			c.progress(have, length)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			_ = f.Sync()
			return have, rerr
		}
	}
	if err := f.Sync(); err != nil {
		return have, err
	}
	if have != length {
		return have, io.ErrUnexpectedEOF
	}
	return have, nil
}

func (c *client) progress(done, total int64) {
	if c.cfg.Progress != nil {
		c.cfg.Progress(done, total)
	}
}

// verifyFile checks a downloaded file against the signed length and digest.
func verifyFile(p string, length int64, sum string) error {
	f, err := os.Open(p)
	if err != nil {
		return fmt.Errorf("device: open download: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return fmt.Errorf("device: read download: %w", err)
	}
	if n != length {
		return errs.E(errs.Invalid, "device: downloaded %d bytes, the signed length is %d", n, length)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != sum {
		return errs.E(errs.Invalid, "device: downloaded file has sha256 %s, the signed digest is %s", got, sum)
	}
	return nil
}
