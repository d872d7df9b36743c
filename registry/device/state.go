package device

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/afterlife-oss/afterlife/internal/errs"
)

// Everything a device keeps lives in StateDir:
//
//	root.json      the root trusted at Init
//	config.json    settings (registry, ids, channel, opt-in, boot settings)
//	state.json     what happened: last check, pending install, last install
//	tuf/           go-tuf's cache of verified metadata
//	downloads/     partial downloads and their receipts
//	slots/         the A/B layout, unless install_dir says otherwise
//
// Every file is written atomically: a temporary file, fsync, rename,
// fsync of the directory.
const (
	stateFile              = "state.json"
	defaultSlotsDir        = "slots"
	defaultConfirmDeadline = 10 * time.Minute
)

// State is what happened on the device, StateDir/state.json.
type State struct {
	// LastCheck is the last time the device asked for an update and what
	// it concluded.
	LastCheck *CheckRecord `json:"last_check,omitempty"`
	// Pending is an install whose slot is not confirmed yet: the health
	// check has not passed, or the device is rebooting into it.
	Pending *PendingInstall `json:"pending,omitempty"`
	// LastInstall is how the last install ended.
	LastInstall *InstallRecord `json:"last_install,omitempty"`
	// Failed lists releases that failed on this device (by target sha256),
	// which Update does not install again unless told to.
	Failed []FailedRelease `json:"failed,omitempty"`
}

// CheckRecord is one check for an update.
type CheckRecord struct {
	At     time.Time `json:"at"`
	Answer string    `json:"answer"` // what the device concluded, in words
	Error  string    `json:"error,omitempty"`
	// Offered is the version found for the device, if any.
	Offered string `json:"offered,omitempty"`
	// NeedsOptIn is set when a community release was refused for want of
	// the owner's opt-in.
	NeedsOptIn bool `json:"needs_opt_in,omitempty"`
	// Warnings are what the check learnt that the owner should know
	// (status shows them), e.g. that the installed release was yanked.
	Warnings []string `json:"warnings,omitempty"`
}

// PendingInstall is an installed slot on trial.
type PendingInstall struct {
	Product   string    `json:"product"`
	Version   string    `json:"version"`
	ReleaseID string    `json:"release_id"`
	SHA256    string    `json:"sha256"`
	Slot      string    `json:"slot"`
	Previous  string    `json:"previous"` // the slot to fall back to, "" when there is none
	Receipt   string    `json:"receipt,omitempty"`
	Since     time.Time `json:"since"`
	Rebooting bool      `json:"rebooting,omitempty"`
}

// InstallRecord is how an install ended.
type InstallRecord struct {
	Version string    `json:"version"`
	Slot    string    `json:"slot"`
	Outcome string    `json:"outcome"` // "confirmed" or "rolled back"
	Reason  string    `json:"reason,omitempty"`
	At      time.Time `json:"at"`
}

// FailedRelease is a release that failed on this device.
type FailedRelease struct {
	Version string `json:"version"`
	SHA256  string `json:"sha256"`
	Reason  string `json:"reason"`
}

// Outcomes of an InstallRecord.
const (
	installConfirmed  = "confirmed"
	installRolledBack = "rolled back"
)

// readStored reads StateDir/config.json; errs.NotFound when there is none.
func readStored(dir string) (stored, error) {
	var st stored
	b, err := os.ReadFile(filepath.Join(dir, configFile))
	if errors.Is(err, fs.ErrNotExist) {
		return st, errs.E(errs.NotFound, "device: %s has no %s", dir, configFile)
	}
	if err != nil {
		return st, fmt.Errorf("device: read config: %w", err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, errs.Wrap(errs.Invalid, err, "device: config %s", filepath.Join(dir, configFile))
	}
	return st, nil
}

// apply takes the settings cfg sets over the stored ones and says whether
// anything changed (so it is remembered).
func (st *stored) apply(cfg Config) bool {
	before := *st
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	set(&st.Registry, cfg.Registry)
	set(&st.DeviceID, cfg.DeviceID)
	set(&st.Channel, cfg.Channel)
	set(&st.Product, cfg.Product)
	set(&st.HealthCheckCommand, cfg.HealthCheckCommand)
	set(&st.RebootCommand, cfg.RebootCommand)
	if cfg.InstallDir != "" {
		if abs, err := filepath.Abs(cfg.InstallDir); err == nil {
			st.InstallDir = abs
		}
	}
	if cfg.ConfirmDeadline > 0 {
		st.ConfirmDeadline = cfg.ConfirmDeadline.String()
	}
	if cfg.Boot != (BootSettings{}) {
		st.Boot = cfg.Boot
	}
	st.AcceptCommunity = st.AcceptCommunity || cfg.AcceptCommunity
	return *st != before
}

func (c *client) saveStored() error {
	if err := os.MkdirAll(c.cfg.StateDir, 0o700); err != nil {
		return fmt.Errorf("device: create state dir: %w", err)
	}
	b, err := json.MarshalIndent(c.st, "", "  ")
	if err != nil {
		return fmt.Errorf("device: encode config: %w", err)
	}
	if err := writeFileSync(filepath.Join(c.cfg.StateDir, configFile), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("device: store config: %w", err)
	}
	return nil
}

// readState reads StateDir/state.json; a device that has none yet has an
// empty State.
func readState(dir string) (State, error) {
	var s State
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return s, fmt.Errorf("device: read state: %w", err)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, errs.Wrap(errs.Invalid, err, "device: state %s", filepath.Join(dir, stateFile))
	}
	return s, nil
}

func (c *client) saveState() error {
	b, err := json.MarshalIndent(c.state, "", "  ")
	if err != nil {
		return fmt.Errorf("device: encode state: %w", err)
	}
	if err := writeFileSync(filepath.Join(c.cfg.StateDir, stateFile), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("device: store state: %w", err)
	}
	return nil
}

// recordCheck remembers the answer of a check (best effort: a state that
// cannot be written is logged, the update itself stands).
func (c *client) recordCheck(answer, offered string, err error) {
	c.state.LastCheck = &CheckRecord{At: c.now().UTC(), Answer: answer, Offered: offered, Warnings: c.checkWarnings}
	c.checkWarnings = nil
	if err != nil {
		c.state.LastCheck.Error = err.Error()
		var opt needsOptIn
		c.state.LastCheck.NeedsOptIn = errors.As(err, &opt)
	}
	if serr := c.saveState(); serr != nil {
		c.log.Warn("device: could not record the check", "err", serr)
	}
}

// failedHere returns the record of a release that failed on this device.
func (c *client) failedHere(sha256 string) *FailedRelease {
	for i := range c.state.Failed {
		if c.state.Failed[i].SHA256 == sha256 {
			return &c.state.Failed[i]
		}
	}
	return nil
}

// maxFailedKept bounds the list of failed releases.
const maxFailedKept = 16

func (c *client) markFailed(p *PendingInstall, reason string) {
	if c.failedHere(p.SHA256) != nil {
		return
	}
	c.state.Failed = append(c.state.Failed, FailedRelease{Version: p.Version, SHA256: p.SHA256, Reason: reason})
	if n := len(c.state.Failed); n > maxFailedKept {
		c.state.Failed = c.state.Failed[n-maxFailedKept:]
	}
}
