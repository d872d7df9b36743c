package device

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/afterlife-oss/afterlife/internal/errs"
)

// Status is what a device knows about itself, from StateDir alone (it
// asks the registry nothing).
type Status struct {
	StateDir        string       `json:"state_dir"`
	Registry        string       `json:"registry"`
	DeviceID        string       `json:"device_id"`
	InstallID       string       `json:"install_id"`
	Product         string       `json:"product,omitempty"`
	Channel         string       `json:"channel"`
	AcceptCommunity bool         `json:"accept_community"`
	InstallDir      string       `json:"install_dir"`
	Bootloader      string       `json:"bootloader"`
	ActiveSlot      string       `json:"active_slot,omitempty"`
	Slots           []SlotStatus `json:"slots"`
	// RootVersion is the version of the newest root the device verified
	// (the one pinned at init until the registry rotates its keys).
	RootVersion int64 `json:"root_version"`
	// MetadataExpires is when the newest verified timestamp metadata
	// expires; zero before the first check.
	MetadataExpires time.Time       `json:"metadata_expires,omitzero"`
	LastCheck       *CheckRecord    `json:"last_check,omitempty"`
	Pending         *PendingInstall `json:"pending,omitempty"`
	LastInstall     *InstallRecord  `json:"last_install,omitempty"`
	Failed          []FailedRelease `json:"failed,omitempty"`
	Warnings        []string        `json:"warnings"`
}

// SlotStatus is what one slot holds.
type SlotStatus struct {
	Slot      string    `json:"slot"`
	Active    bool      `json:"active"`
	Product   string    `json:"product,omitempty"`
	Version   string    `json:"version,omitempty"` // "" when the slot is empty
	ReleaseID string    `json:"release_id,omitempty"`
	SHA256    string    `json:"sha256,omitempty"`
	Installed time.Time `json:"installed,omitzero"`
}

// ReadStatus reads the device's status from StateDir.
func ReadStatus(_ context.Context, cfg Config) (*Status, error) {
	c, err := newClient(cfg, true)
	if err != nil {
		return nil, err
	}
	st := &Status{
		StateDir: c.cfg.StateDir, Registry: c.st.Registry, DeviceID: c.st.DeviceID, InstallID: c.st.InstallID,
		Product: c.st.Product, Channel: c.st.Channel, AcceptCommunity: c.st.AcceptCommunity, InstallDir: c.cfg.InstallDir,
		Bootloader: c.st.Boot.String(), LastCheck: c.state.LastCheck, Pending: c.state.Pending, LastInstall: c.state.LastInstall,
		Failed: c.state.Failed, Warnings: []string{},
	}
	if st.Channel == "" {
		st.Channel = channelStable
	}
	if st.ActiveSlot, err = activeSlot(c.cfg.InstallDir); err != nil {
		st.Warnings = append(st.Warnings, err.Error())
	}
	for _, s := range []string{slotA, slotB} {
		ss := SlotStatus{Slot: s, Active: s == st.ActiveSlot}
		r, err := readRelease(c.cfg.InstallDir, s)
		switch {
		case err == nil:
			ss.Product, ss.Version, ss.ReleaseID, ss.SHA256, ss.Installed = r.Product, r.Version, r.ReleaseID, r.SHA256, r.Installed
			if st.Product == "" && ss.Active {
				st.Product = r.Product
			}
		case !errs.Is(err, errs.NotFound):
			st.Warnings = append(st.Warnings, err.Error())
		}
		st.Slots = append(st.Slots, ss)
	}
	meta := filepath.Join(c.cfg.StateDir, tufDir)
	if st.RootVersion, err = rootVersionUnverified(meta, c.cfg.StateDir); err != nil {
		st.Warnings = append(st.Warnings, err.Error())
	}
	if exp, ok := timestampExpiryUnverified(meta); ok {
		st.MetadataExpires = exp
		if !c.now().Before(exp) {
			st.Warnings = append(st.Warnings, fmt.Sprintf("the signed metadata this device last verified expired at %s: "+
				"it cannot verify an update until it reaches a registry or mirror that signs fresh metadata", exp.UTC().Format(time.RFC3339)))
		}
	}
	st.Warnings = append(st.Warnings, c.statusWarnings()...)
	return st, nil
}

// statusWarnings are the warnings of the recorded state.
func (c *client) statusWarnings() []string {
	var w []string
	if lc := c.state.LastCheck; lc != nil {
		w = append(w, lc.Warnings...)
		if lc.NeedsOptIn && !c.st.AcceptCommunity {
			w = append(w, "a community release is waiting for the owner's opt-in: --accept-community-firmware (config key accept_community)")
		}
		if lc.Error != "" {
			w = append(w, "the last check failed: "+lc.Error)
		}
	} else {
		w = append(w, "this device has not checked for updates yet")
	}
	if p := c.state.Pending; p != nil {
		w = append(w, fmt.Sprintf("%s %s in slot %s is installed but not confirmed yet (since %s; rolled back if not confirmed within %s)",
			p.Product, p.Version, p.Slot, p.Since.UTC().Format(time.RFC3339), c.cfg.ConfirmDeadline))
	}
	if li := c.state.LastInstall; li != nil && li.Outcome == installRolledBack {
		w = append(w, fmt.Sprintf("the install of %s was rolled back: %s", li.Version, li.Reason))
	}
	return w
}

// rootVersionUnverified reads the version of the newest root in the TUF
// cache (verified when the updater stored it), else of the pinned root.
func rootVersionUnverified(metaDir, stateDir string) (int64, error) {
	b, err := os.ReadFile(filepath.Join(metaDir, rootFile))
	if errors.Is(err, fs.ErrNotExist) {
		b, err = os.ReadFile(filepath.Join(stateDir, rootFile))
	}
	if err != nil {
		return 0, fmt.Errorf("device: read the pinned root: %w", err)
	}
	root, err := (&metadata.Metadata[metadata.RootType]{}).FromBytes(b)
	if err != nil {
		return 0, errs.Wrap(errs.Invalid, err, "device: the pinned root does not parse")
	}
	return root.Signed.Version, nil
}

// timestampExpiryUnverified reads the expiry of the cached timestamp
// metadata (verified when the updater stored it).
func timestampExpiryUnverified(metaDir string) (time.Time, bool) {
	b, err := os.ReadFile(filepath.Join(metaDir, metadata.TIMESTAMP+".json"))
	if err != nil {
		return time.Time{}, false
	}
	ts, err := (&metadata.Metadata[metadata.TimestampType]{}).FromBytes(b)
	if err != nil {
		return time.Time{}, false
	}
	return ts.Signed.Expires, true
}
