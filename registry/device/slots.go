package device

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/afterlife-oss/afterlife/internal/errs"
)

// The A/B layout under InstallDir:
//
//	a/                 one slot: the artifact file and release.json
//	b/                 the other slot
//	current -> a       symlink to the active slot
//
// An update writes the inactive slot completely, fsyncs it, then points
// "current" at it by renaming a fresh symlink over the old one, so a power
// cut leaves either the old or the new slot active, never half of one.
const (
	slotA       = "a"
	slotB       = "b"
	currentLink = "current"
	releaseFile = "release.json"
)

func otherSlot(s string) string {
	if s == slotA {
		return slotB
	}
	return slotA
}

// activeSlot returns the slot "current" points to, or "" when none does.
func activeSlot(installDir string) (string, error) {
	target, err := os.Readlink(filepath.Join(installDir, currentLink))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("device: read %s: %w", currentLink, err)
	}
	s := filepath.Base(target)
	if s != slotA && s != slotB {
		return "", errs.E(errs.Invalid, "device: %s points to %q, not a slot", currentLink, target)
	}
	return s, nil
}

// activate installs the verified file into the inactive slot with its
// release.json and switches "current" to it.
func activate(installDir, file string, rel Release) (string, error) {
	active, err := activeSlot(installDir)
	if err != nil {
		return "", err
	}
	slot := slotA
	if active != "" {
		slot = otherSlot(active)
	}
	dir := filepath.Join(installDir, slot)
	if err := os.RemoveAll(dir); err != nil {
		return "", fmt.Errorf("device: clear slot %s: %w", slot, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("device: create slot %s: %w", slot, err)
	}
	if err := copyFileSync(file, filepath.Join(dir, rel.File)); err != nil {
		return "", fmt.Errorf("device: install into slot %s: %w", slot, err)
	}
	meta, err := json.MarshalIndent(rel, "", "  ")
	if err != nil {
		return "", fmt.Errorf("device: encode release: %w", err)
	}
	if err := writeFileSync(filepath.Join(dir, releaseFile), append(meta, '\n'), 0o644); err != nil {
		return "", fmt.Errorf("device: write release.json: %w", err)
	}
	if err := switchTo(installDir, slot); err != nil {
		return "", err
	}
	return slot, nil
}

// switchTo points "current" at slot atomically: symlink to a temporary
// name, rename over "current", fsync the directory.
func switchTo(installDir, slot string) error {
	tmp := filepath.Join(installDir, currentLink+".tmp")
	_ = os.Remove(tmp)
	if err := os.Symlink(slot, tmp); err != nil {
		return fmt.Errorf("device: switch to slot %s: %w", slot, err)
	}
	if err := os.Rename(tmp, filepath.Join(installDir, currentLink)); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("device: switch to slot %s: %w", slot, err)
	}
	if err := syncDir(installDir); err != nil {
		return fmt.Errorf("device: sync %s: %w", installDir, err)
	}
	return nil
}

func copyFileSync(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return syncDir(filepath.Dir(dst))
}

func readRelease(installDir, slot string) (*Release, error) {
	b, err := os.ReadFile(filepath.Join(installDir, slot, releaseFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errs.E(errs.NotFound, "device: slot %s holds no release", slot)
	}
	if err != nil {
		return nil, fmt.Errorf("device: read slot %s: %w", slot, err)
	}
	var r Release
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, errs.Wrap(errs.Invalid, err, "device: slot %s release.json", slot)
	}
	return &r, nil
}

// installedRelease is what the active slot holds, nil when nothing is
// installed (or the active slot records no release).
func installedRelease(installDir string) (*Release, error) {
	slot, err := activeSlot(installDir)
	if err != nil || slot == "" {
		return nil, err
	}
	r, err := readRelease(installDir, slot)
	if errs.Is(err, errs.NotFound) {
		return nil, nil
	}
	return r, err
}

// installDirOf is the A/B directory cfg names: InstallDir, else the one
// remembered in StateDir/config.json, else StateDir/slots.
func installDirOf(cfg Config) (string, error) {
	if cfg.InstallDir != "" {
		return cfg.InstallDir, nil
	}
	if cfg.StateDir == "" {
		return "", errs.E(errs.Invalid, "device: InstallDir is not set (--install-to)")
	}
	st, err := readStored(cfg.StateDir)
	if err != nil && !errs.Is(err, errs.NotFound) {
		return "", err
	}
	if st.InstallDir != "" {
		return st.InstallDir, nil
	}
	return filepath.Join(cfg.StateDir, defaultSlotsDir), nil
}

// Current returns the version in the active slot; errs.NotFound when
// nothing is installed yet.
func Current(cfg Config) (string, error) {
	dir, err := installDirOf(cfg)
	if err != nil {
		return "", err
	}
	slot, err := activeSlot(dir)
	if err != nil {
		return "", err
	}
	if slot == "" {
		return "", errs.E(errs.NotFound, "device: nothing is installed in %s", dir)
	}
	r, err := readRelease(dir, slot)
	if err != nil {
		return "", err
	}
	return r.Version, nil
}

// Rollback makes the other slot active again, when it holds a release,
// and tells the bootloader (when the device has one) to boot it.
func Rollback(ctx context.Context, cfg Config) error {
	dir, err := installDirOf(cfg)
	if err != nil {
		return err
	}
	if cfg.StateDir != "" {
		unlock, err := lockState(cfg.StateDir)
		if err != nil {
			return err
		}
		defer unlock()
	}
	slot, err := activeSlot(dir)
	if err != nil {
		return err
	}
	if slot == "" {
		return errs.E(errs.Conflict, "device: nothing is installed, nothing to roll back")
	}
	prev := otherSlot(slot)
	if _, err := readRelease(dir, prev); errs.Is(err, errs.NotFound) {
		return errs.E(errs.Conflict, "device: slot %s holds no earlier release to roll back to", prev)
	} else if err != nil {
		return err
	}
	if cfg.StateDir != "" {
		boot := cfg.Bootloader
		if boot == nil {
			if st, err := readStored(cfg.StateDir); err == nil {
				if boot, err = st.Boot.bootloader(cfg.StateDir); err != nil {
					return err
				}
			}
		}
		if boot != nil {
			// Boot the earlier slot from now on, not on trial.
			if err := boot.MarkPending(ctx, prev, ""); err != nil {
				return fmt.Errorf("device: tell the bootloader to boot slot %s: %w", prev, err)
			}
		}
	}
	return switchTo(dir, prev)
}
