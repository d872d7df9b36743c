package device

import (
	"context"
	"fmt"
	"path"

	"github.com/theupdateframework/go-tuf/v2/metadata/updater"

	"github.com/afterlife-oss/afterlife/internal/errs"
)

// Yanks. A yanked release stays in the signed metadata, marked
// (TargetMeta.Yanked, YankReason), and moves to the Yanked part of its
// product's release list, so a device running it learns of the yank from
// TUF alone, also from a static mirror. The device is then offered the
// newest release its channel still carries. When that one is older, the
// device may install it only because the registry signed exactly that
// permission on it (TargetMeta.RollbackFromYanked names the yanked
// version); every other downgrade stays refused.

// YankedFrom is a signed permission on a target: devices running Version,
// which was yanked for Reason, may go back to this target.
type YankedFrom struct {
	Version string `json:"version"`
	Reason  string `json:"reason"`
}

// YankedTarget is a yanked release in a product's signed release list.
type YankedTarget struct {
	Version string `json:"version"`
	Channel string `json:"channel"`
	Target  string `json:"target"`
	Reason  string `json:"reason"`
}

// rollsBackFromYanked says whether m carries the signed permission to go
// back to it from the yanked version current.
func (m TargetMeta) rollsBackFromYanked(current string) bool {
	for _, y := range m.RollbackFromYanked {
		if y.Version == current {
			return true
		}
	}
	return false
}

// YankStatus says whether the release a device runs was yanked, as the
// registry's signed metadata says.
type YankStatus struct {
	Product string `json:"product"`
	Version string `json:"version"`
	Yanked  bool   `json:"yanked"`
	Reason  string `json:"reason,omitempty"`
}

// InstalledYank refreshes the signed metadata and says whether the release
// in the active slot was yanked, and why. It returns nil when nothing is
// installed. It reads only TUF metadata, so it works against a static
// mirror as against the registry.
func InstalledYank(ctx context.Context, cfg Config) (*YankStatus, error) {
	c, err := newClient(cfg, true)
	if err != nil {
		return nil, err
	}
	if cfg.InstallDir == "" {
		return nil, errs.E(errs.Invalid, "device: InstallDir is not set")
	}
	installed, err := installedRelease(cfg.InstallDir)
	if err != nil || installed == nil {
		return nil, err
	}
	up, err := c.updater()
	if err != nil {
		return nil, err
	}
	return yankOf(up, installed)
}

// yankOf looks the installed release's target up in verified metadata.
func yankOf(up *updater.Updater, installed *Release) (*YankStatus, error) {
	st := &YankStatus{Product: installed.Product, Version: installed.Version}
	p := path.Join(installed.Product, installed.Version, installed.File)
	info, err := up.GetTargetInfo(p)
	if err != nil {
		// Not listed (any more): nothing signed says it was yanked.
		return st, nil
	}
	m, err := signedMeta(info)
	if err != nil {
		return nil, err
	}
	st.Yanked, st.Reason = m.Yanked, m.YankReason
	return st, nil
}

// Warning is the yank as device status shows it.
func (y *YankStatus) Warning() string {
	w := fmt.Sprintf("the installed release %s %s was yanked", y.Product, y.Version)
	if y.Reason != "" {
		w += ": " + y.Reason
	}
	return w
}
