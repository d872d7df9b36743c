// Package device is the client a device (or its integrator) imports to
// update over the air from an afterlife registry: it finds the release to
// install (the update API's offer is a hint; without an update API it
// reads the product's signed release list), decides on the fields the
// registry signed into its TUF target metadata, verified with go-tuf's
// updater, downloads the file with resume, installs it into the inactive
// slot of an A/B layout, switches slots atomically and reports the
// outcome. It must never install bytes or act on product, version,
// channel or community flags that TUF metadata does not vouch for, never
// act on a community release without the owner's opt-in, and never
// replace a pinned root silently. It does not know how the registry
// stores anything; it speaks only HTTP.
package device

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/updater"

	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/httpclient"
)

// Config says where the registry is and where the device keeps things.
// Registry, InstallDir, DeviceID, Channel, Product, AcceptCommunity and the
// boot settings are remembered in StateDir/config.json: Init stores them,
// and a later call that sets one stores the new value, so a device is
// configured once and then updates with a bare Update(ctx, Config{StateDir}).
type Config struct {
	// Registry is the registry's base URL, e.g. "https://registry.example"
	// (config key "registry").
	Registry string
	// StateDir holds everything the device keeps (see docs/device-client.md):
	// the trusted TUF root, the TUF metadata cache, config.json (settings),
	// state.json (last check, pending install), partial downloads and, unless
	// InstallDir says otherwise, the A/B slots.
	StateDir string
	// InstallDir holds the A/B layout: slots "a" and "b" and the symlink
	// "current" to the active one (config key "install_dir"; default
	// StateDir/slots).
	InstallDir string
	// DeviceID, Channel and Product override the values Init stored when
	// set. Product is the product this device is; without it the device
	// learns it from its first install. Releases of another product are
	// refused.
	DeviceID, Channel, Product string
	// AcceptCommunity allows community releases; once given it is
	// remembered (config key "accept_community").
	AcceptCommunity bool
	// FromMetadata makes Update find the release in the signed TUF
	// metadata alone, without asking the update API (Update also does so
	// when the registry has no update API, as on a static mirror).
	FromMetadata bool
	// NoDeltas makes Update always download full images, for devices
	// without the memory to apply a delta (about three times the image;
	// see delta.go).
	NoDeltas bool
	// ReplaceRoot lets Init replace a root that StateDir already pins by a
	// different one, forgetting the metadata verified under the old one.
	ReplaceRoot bool
	// TrustOnFirstUse lets Init without a root trust whatever root the
	// registry answers with. Without it, Init needs a root or the vendor's
	// key (InitFromVendor).
	TrustOnFirstUse bool
	// Boot says how the device's bootloader is told about a new slot
	// (config key "boot"); the zero value means the A/B directory alone.
	// Bootloader, when set, is used instead (and not remembered).
	Boot       BootSettings
	Bootloader Bootloader
	// HealthCheckCommand is a shell command run after an install; exit 0
	// confirms the new slot, anything else (or no answer within
	// ConfirmDeadline) rolls back to the previous slot (config key
	// "health_check"). HealthCheck, when set, is used instead.
	HealthCheckCommand string
	HealthCheck        func(ctx context.Context) error
	// ConfirmDeadline bounds how long a new slot may stay unconfirmed
	// (config key "confirm_deadline"; default 10 minutes).
	ConfirmDeadline time.Duration
	// RebootCommand, when set, is run after the new slot is marked pending
	// so the device boots it; the check and the confirmation then happen
	// when the client starts again (config key "reboot").
	RebootCommand string
	// RetryFailed lets Update install again a release that failed its
	// health check on this device (normally skipped until a newer one).
	RetryFailed bool
	// HTTPClient supplies the transport (TLS settings, proxies); requests
	// are always retried with afterlife's policy on top of it.
	HTTPClient *http.Client
	// Progress, when set, is called as the download advances.
	Progress func(done, total int64)
	// Logger receives what the client does (default: discard).
	Logger *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Offer is the registry's answer to "is there an update for me?", as
// served by GET /v1/devices/updates. It is not signed: Update uses only its
// target path, as a hint of where to look in the signed metadata.
type Offer struct {
	Product    string      `json:"product"`
	ReleaseID  string      `json:"release_id"`
	Version    string      `json:"version"`
	Channel    string      `json:"channel"`
	Notes      string      `json:"notes"`
	Community  bool        `json:"community"`
	RiskNotes  string      `json:"risk_notes"`
	MinVersion string      `json:"min_version"`
	Target     OfferTarget `json:"target"`
}

// OfferTarget names the file to install as the TUF metadata lists it.
type OfferTarget struct {
	Path   string            `json:"path"`
	Length int64             `json:"length"`
	Hashes map[string]string `json:"hashes"`
}

// Report is the body of POST /v1/devices/reports.
// A report counts only when it carries the receipt the registry gave
// this install with the download of the release.
type Report struct {
	DeviceID  string `json:"device_id"`
	ReleaseID string `json:"release_id"`
	Version   string `json:"version"`
	Outcome   string `json:"outcome"` // "success" or "failure"
	Reason    string `json:"reason,omitempty"`
	// RolledBack is set on a failure the device undid: it went back to
	// the firmware it ran before.
	RolledBack bool   `json:"rolled_back,omitempty"`
	InstallID  string `json:"install_id,omitempty"`
	Receipt    string `json:"receipt,omitempty"`
}

// Outcomes of a Report.
const (
	OutcomeSuccess = "success"
	OutcomeFailure = "failure"
)

// stored is the device's config file, StateDir/config.json: its
// settings, written by Init and by any later call that changes one. Its
// keys are the "config keys" refusals name.
type stored struct {
	// InstallID is this device's random id (16 bytes, hex), made at Init:
	// the registry binds download receipts to it. A device id names a
	// model, shared by a whole fleet; the install id names one device.
	InstallID          string       `json:"install_id"`
	Registry           string       `json:"registry,omitempty"`
	InstallDir         string       `json:"install_dir,omitempty"`
	DeviceID           string       `json:"device_id"`
	Product            string       `json:"product,omitempty"`
	Channel            string       `json:"channel"`
	AcceptCommunity    bool         `json:"accept_community"`
	Boot               BootSettings `json:"boot,omitzero"`
	HealthCheckCommand string       `json:"health_check,omitempty"`
	ConfirmDeadline    string       `json:"confirm_deadline,omitempty"`
	RebootCommand      string       `json:"reboot,omitempty"`
}

const (
	rootFile   = "root.json"
	configFile = "config.json"
	tufDir     = "tuf"
	partDir    = "downloads"
)

// client is a Config resolved against the stored config file.
type client struct {
	cfg    Config
	st     stored
	state  State // StateDir/state.json
	http   *http.Client
	log    *slog.Logger
	now    func() time.Time
	base   *url.URL
	tufURL string
	boot   Bootloader
	// receipt is what the registry answered the last download with.
	receipt string
	// checkWarnings are what the running check learnt that the owner
	// should know (that the installed release was yanked, say): code on
	// the update path appends to it, recordCheck keeps it in state.json,
	// and status shows it.
	checkWarnings []string
	// retryAfter is the longest Retry-After the registry answered with
	// since it was last reset (see Run).
	retryAfter *retryAfterRecorder
	// up is the TUF updater once refreshed: one refresh per call.
	up *updater.Updater
}

// Headers of a download: the install id it is for, and the registry's
// receipt for this install and release (sent back with the report).
const (
	installIDHeader = "Afterlife-Install-Id"
	receiptHeader   = "Afterlife-Receipt"
)

func newInstallID() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("device: install id: %w", err)
	}
	return hex.EncodeToString(b), nil
}

func newClient(cfg Config, needState bool) (*client, error) {
	if cfg.StateDir == "" {
		return nil, errs.E(errs.Invalid, "device: StateDir is not set (--state)")
	}
	c := &client{cfg: cfg, log: cfg.Logger, now: cfg.Now}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.now == nil {
		c.now = time.Now
	}
	prev, err := readStored(cfg.StateDir)
	switch {
	case errs.Is(err, errs.NotFound) && needState:
		return nil, errs.E(errs.Invalid, "device: %s holds no device state; run init first (afterlife-device init --state %s --registry URL --id DEVICE-ID)", cfg.StateDir, cfg.StateDir)
	case errs.Is(err, errs.NotFound):
	case err != nil:
		return nil, err
	default:
		c.st = prev
	}
	changed := c.st.apply(cfg)
	if c.st.Registry == "" {
		return nil, errs.E(errs.Invalid, "device: no registry URL: give one with --registry (config key registry)")
	}
	base, err := url.Parse(strings.TrimSuffix(c.st.Registry, "/"))
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, errs.E(errs.Invalid, "device: registry URL %q is not an http(s) URL (--registry, config key registry)", c.st.Registry)
	}
	c.base = base
	c.cfg.Registry = c.st.Registry
	c.cfg.InstallDir = c.st.InstallDir
	if c.cfg.InstallDir == "" {
		c.cfg.InstallDir = filepath.Join(cfg.StateDir, defaultSlotsDir)
	}
	if c.cfg.ConfirmDeadline <= 0 {
		c.cfg.ConfirmDeadline = defaultConfirmDeadline
		if d, err := time.ParseDuration(c.st.ConfirmDeadline); err == nil && d > 0 {
			c.cfg.ConfirmDeadline = d
		}
	}
	c.retryAfter = &retryAfterRecorder{}
	rc := httpclient.New(httpclient.Options{Logger: c.log})
	if cfg.HTTPClient != nil {
		rc.HTTPClient = cfg.HTTPClient
	}
	rc.HTTPClient = c.retryAfter.wrap(rc.HTTPClient)
	c.http = rc.StandardClient()
	c.tufURL = base.JoinPath("tuf").String()
	if c.boot = cfg.Bootloader; c.boot == nil {
		if c.boot, err = c.st.Boot.bootloader(cfg.StateDir); err != nil {
			return nil, err
		}
	}
	if !needState {
		return c, nil
	}
	if c.st.InstallID == "" {
		// Initialised by a version that had no install ids.
		if c.st.InstallID, err = newInstallID(); err != nil {
			return nil, err
		}
		changed = true
	}
	if changed {
		if err := c.saveStored(); err != nil {
			return nil, err
		}
	}
	if c.state, err = readState(cfg.StateDir); err != nil {
		return nil, err
	}
	return c, nil
}

// Init prepares StateDir: it stores the trusted TUF root and the device's
// config (a new random install id, device id, product, channel, whether
// community releases are accepted). Run again with the same root it only
// updates the config; a different root is refused (errs.Conflict) unless
// Config.ReplaceRoot is set, because replacing it forgets the metadata
// versions that protect the device against rollback.
// With rootJSON nil it trusts on first use, and only when
// Config.TrustOnFirstUse says so: it fetches /tuf/1.root.json from the
// registry, checks that it is signed by its own root keys, and logs a
// warning, since whoever answers that request decides what the device
// trusts. Ship the root with the device where you can, or let the
// vendor's key vouch for it (InitFromVendor).
func Init(ctx context.Context, cfg Config, rootJSON []byte, acceptCommunity bool) error {
	c, err := newClient(cfg, false)
	if err != nil {
		return err
	}
	if rootJSON == nil {
		if !cfg.TrustOnFirstUse {
			return errs.E(errs.Invalid, "device: no root to trust: give the key the vendor's devices trust (init --vendor-key FILE), "+
				"or the root (init --root FILE), or trust the registry on first use on purpose (init --trust-on-first-use)")
		}
		c.log.Warn("device: no root given; trusting the registry's 1.root.json on first use", "registry", c.cfg.Registry)
		if rootJSON, err = c.get(ctx, c.tufURL+"/1.root.json", 512<<10); err != nil {
			return fmt.Errorf("device: fetch root for trust on first use: %w", err)
		}
	}
	_, err = c.pin(ctx, rootJSON, acceptCommunity, cfg.ReplaceRoot, false)
	return err
}

// pin stores rootJSON as the trusted root and saves the config. A root
// different from the one pinned is refused unless replace; replacing it
// forgets the TUF metadata verified under the old one and, unless
// keepInstall, makes the device a new install. It reports whether the
// pinned root changed.
func (c *client) pin(ctx context.Context, rootJSON []byte, acceptCommunity, replaceOK, keepInstall bool) (bool, error) {
	stateDir := c.cfg.StateDir
	root, err := (&metadata.Metadata[metadata.RootType]{}).FromBytes(rootJSON)
	if err != nil {
		return false, errs.Wrap(errs.Invalid, err, "device: the root is not TUF root metadata")
	}
	if err := root.VerifyDelegate(metadata.ROOT, root); err != nil {
		return false, errs.Wrap(errs.Invalid, err, "device: the root is not signed by its own root keys")
	}
	pinned, err := os.ReadFile(filepath.Join(stateDir, rootFile))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("device: read pinned root: %w", err)
	}
	replace := pinned == nil || !bytes.Equal(pinned, rootJSON)
	if pinned != nil && replace && !replaceOK {
		return false, errs.E(errs.Conflict, "device: %s already pins %s; a different root would replace it and forget the metadata "+
			"verified under it (the versions that protect this device against rollback). Keep it, or replace it on purpose "+
			"with init --force (Config.ReplaceRoot)", stateDir, describeRoot(pinned))
	}
	if err := os.MkdirAll(filepath.Join(stateDir, tufDir), 0o700); err != nil {
		return false, fmt.Errorf("device: create state dir: %w", err)
	}
	unlock, err := lockState(stateDir)
	if err != nil {
		return false, err
	}
	defer unlock()
	c.st.AcceptCommunity = c.st.AcceptCommunity || acceptCommunity
	// Init again with the same root is the same device: it keeps its
	// install id, which its download receipts are bound to. A new root
	// makes it a new device, unless it re-anchors (keepInstall).
	if replace && pinned != nil && !keepInstall {
		c.st.InstallID = ""
	}
	if c.st.InstallID == "" {
		if c.st.InstallID, err = newInstallID(); err != nil {
			return false, err
		}
	}
	if replace {
		// A new root replaces the metadata cached under the old one.
		if pinned != nil {
			c.log.Warn("device: replacing the pinned root and forgetting the metadata verified under it", "old", describeRoot(pinned), "new", describeRoot(rootJSON))
		}
		if err := os.RemoveAll(filepath.Join(stateDir, tufDir)); err != nil {
			return false, fmt.Errorf("device: reset tuf cache: %w", err)
		}
		if err := os.MkdirAll(filepath.Join(stateDir, tufDir), 0o700); err != nil {
			return false, fmt.Errorf("device: create tuf cache: %w", err)
		}
		if err := writeFileSync(filepath.Join(stateDir, rootFile), rootJSON, 0o644); err != nil {
			return false, fmt.Errorf("device: store root: %w", err)
		}
	}
	if err := c.saveStored(); err != nil {
		return false, err
	}
	c.log.Info("device initialised", "device_id", c.st.DeviceID, "channel", c.st.Channel,
		"accept_community", c.st.AcceptCommunity, "root_version", root.Signed.Version)
	return replace && pinned != nil, nil
}

// describeRoot names a root for a message: its version and root key ids.
func describeRoot(b []byte) string {
	root, err := (&metadata.Metadata[metadata.RootType]{}).FromBytes(b)
	if err != nil {
		return "a root that does not parse"
	}
	var keys []string
	if r, ok := root.Signed.Roles[metadata.ROOT]; ok {
		for _, k := range r.KeyIDs {
			keys = append(keys, k[:min(len(k), 12)])
		}
	}
	return fmt.Sprintf("TUF root version %d (root keys %s)", root.Signed.Version, strings.Join(keys, ", "))
}

// Check asks the registry whether a newer release exists for this device;
// nil means the device is up to date. current "" is the version in the
// active slot ("0" when nothing is installed). The offer is returned unverified:
// Update decides on the signed metadata and may refuse it.
func Check(ctx context.Context, cfg Config, current string) (*Offer, error) {
	c, err := newClient(cfg, true)
	if err != nil {
		return nil, err
	}
	id, err := c.identity(current)
	if err != nil {
		return nil, err
	}
	return c.check(ctx, id.current)
}

func (c *client) check(ctx context.Context, current string) (*Offer, error) {
	if c.st.DeviceID == "" {
		return nil, errs.E(errs.Invalid, "device: no device id: give one with --id (config key device_id)")
	}
	u := c.base.JoinPath("v1", "devices", "updates")
	u.RawQuery = url.Values{"id": {c.st.DeviceID}, "version": {current}, "channel": {c.st.Channel},
		"bucket": {strconv.Itoa(Bucket(c.st.InstallID))}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("device: check: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, errs.Wrap(errs.Unavailable, err, "device: check for updates")
	}
	defer httpclient.Drain(resp)
	switch resp.StatusCode {
	case http.StatusNoContent:
		return nil, nil
	case http.StatusOK:
	default:
		return nil, httpclient.DecodeError(resp, "device: check for updates")
	}
	var o Offer
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&o); err != nil {
		return nil, errs.Wrap(errs.Invalid, err, "device: the update offer is not valid JSON")
	}
	return &o, nil
}

// get fetches a small document.
func (c *client) get(ctx context.Context, u string, limit int64) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, errs.Wrap(errs.Unavailable, err, "GET %s", u)
	}
	defer httpclient.Drain(resp)
	if resp.StatusCode != http.StatusOK {
		return nil, httpclient.DecodeError(resp, "GET "+u)
	}
	return io.ReadAll(io.LimitReader(resp.Body, limit))
}

// report tells the registry how an install went, with the receipt of the
// download (without one the registry does not count it).
func (c *client) report(ctx context.Context, r Report) error {
	r.DeviceID, r.InstallID, r.Receipt = c.st.DeviceID, c.st.InstallID, c.receipt
	body, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("device: encode report: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base.JoinPath("v1", "devices", "reports").String(), bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("device: report: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return errs.Wrap(errs.Unavailable, err, "device: send report")
	}
	defer httpclient.Drain(resp)
	if resp.StatusCode/100 != 2 {
		return httpclient.DecodeError(resp, "device: send report")
	}
	return nil
}

// writeFileSync writes a file through a temporary file, fsyncs it and
// renames it into place.
func writeFileSync(path string, data []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, werr := f.Write(data)
	if werr == nil {
		werr = f.Chmod(mode)
	}
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp, path)
	}
	if werr != nil {
		_ = os.Remove(tmp)
		return werr
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
