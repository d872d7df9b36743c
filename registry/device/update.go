package device

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/config"
	"github.com/theupdateframework/go-tuf/v2/metadata/fetcher"
	"github.com/theupdateframework/go-tuf/v2/metadata/updater"

	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/httpclient"
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

// Update checks for an offer and, when there is one, verifies, downloads,
// installs and activates it, then reports the outcome to the registry.
// Failures after the offer (verification, download, install) are reported
// too. The offer only says what to look for: length and digests come from
// the registry's signed TUF metadata.
func Update(ctx context.Context, cfg Config, current string) (*Result, error) {
	c, err := newClient(cfg, true)
	if err != nil {
		return nil, err
	}
	if cfg.InstallDir == "" {
		return nil, errs.E(errs.Invalid, "device: InstallDir is not set")
	}
	offer, err := c.check(ctx, current)
	if err != nil {
		return nil, err
	}
	if offer == nil {
		c.log.Info("device is up to date", "version", current)
		return &Result{Version: current}, nil
	}
	if offer.Community && !c.st.AcceptCommunity {
		risk := offer.RiskNotes
		if risk == "" {
			risk = "none given"
		}
		return nil, errs.E(errs.Forbidden,
			"device: %s %s is a community release, built by the community after the vendor's end of life and not by the vendor; "+
				"installing it needs the owner's opt-in (Init with acceptCommunity, or Config.AcceptCommunity). Risk notes: %s",
			offer.Product, offer.Version, risk)
	}
	res, err := c.install(ctx, offer)
	rep := Report{ReleaseID: offer.ReleaseID, Version: offer.Version, Outcome: OutcomeSuccess}
	if err != nil {
		rep.Outcome, rep.Reason = OutcomeFailure, err.Error()
	}
	repErr := c.report(ctx, rep)
	if err != nil {
		if repErr != nil {
			c.log.Warn("device: could not report the failure", "err", repErr)
		}
		return nil, err
	}
	if repErr != nil {
		c.log.Warn("device: installed but could not report it", "err", repErr)
		res.ReportErr = repErr
	}
	return res, nil
}

func (c *client) install(ctx context.Context, offer *Offer) (*Result, error) {
	info, err := c.targetInfo(offer.Target.Path)
	if err != nil {
		return nil, err
	}
	want := hex.EncodeToString(info.Hashes["sha256"])
	if len(info.Hashes["sha256"]) != sha256.Size {
		return nil, errs.E(errs.Invalid, "device: TUF metadata for %s has no sha256", info.Path)
	}
	if offer.Target.Length != info.Length || !strings.EqualFold(offer.Target.Hashes["sha256"], want) {
		return nil, errs.E(errs.Invalid, "device: the offer for %s disagrees with the signed TUF metadata (length %d vs %d, sha256 %s vs %s)",
			info.Path, offer.Target.Length, info.Length, offer.Target.Hashes["sha256"], want)
	}
	part, err := c.download(ctx, info, want)
	if err != nil {
		return nil, err
	}
	slot, err := activate(c.cfg.InstallDir, part, Release{
		Product: offer.Product, Version: offer.Version, ReleaseID: offer.ReleaseID,
		File: path.Base(info.Path), SHA256: want, Length: info.Length, Installed: time.Now().UTC(),
	})
	if err != nil {
		return nil, err
	}
	_ = os.Remove(part)
	c.log.Info("device updated", "version", offer.Version, "slot", slot, "sha256", want)
	return &Result{Updated: true, Product: offer.Product, Version: offer.Version, ReleaseID: offer.ReleaseID, SHA256: want, Slot: slot}, nil
}

// targetInfo runs the TUF client workflow (root rotation, timestamp,
// snapshot, targets, hashed bins, with their rollback and freeze checks)
// and returns the signed description of target path p.
func (c *client) targetInfo(p string) (*metadata.TargetFiles, error) {
	if !validTargetPath(p) {
		return nil, errs.E(errs.Invalid, "device: offered target path %q is not valid", p)
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
	info, err := up.GetTargetInfo(p)
	if err != nil {
		return nil, errs.Wrap(errs.NotFound, err, "device: %s is not in the signed TUF metadata", p)
	}
	return info, nil
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
		return have, statusError(resp, "device: download "+u)
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

func validTargetPath(p string) bool {
	if p == "" || strings.ContainsAny(p, "\\\x00") {
		return false
	}
	for _, el := range strings.Split(p, "/") {
		if el == "" || el == "." || el == ".." {
			return false
		}
	}
	return true
}
