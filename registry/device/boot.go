package device

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/afterlife-oss/afterlife/internal/errs"
)

// Bootloader is the device side of the boot contract (docs/devices.md).
// A daemon cannot roll back a slot that does not boot, so the bootloader
// must: the client marks a new slot pending, the bootloader counts the
// boots of a pending slot and boots the fallback slot again after too
// many, and the client confirms the slot once its health check passes.
type Bootloader interface {
	// MarkPending makes slot the one to boot, on trial, with fallback to
	// go back to ("" when there is none).
	MarkPending(ctx context.Context, slot, fallback string) error
	// Confirm ends the trial: the slot booted now stays.
	Confirm(ctx context.Context) error
	// Fallback ends the trial by making the fallback slot the one to boot.
	Fallback(ctx context.Context) error
	// Booted says which slot the bootloader boots ("" when it does not
	// know) and whether a trial is open.
	Booted(ctx context.Context) (slot string, trial bool, err error)
}

// BootEnv is a bootloader's environment of variables: U-Boot's (through
// fw_printenv and fw_setenv), or a GRUB environment block file that GRUB
// (load_env, save_env) and boot scripts read and write.
type BootEnv interface {
	Load(ctx context.Context) (map[string]string, error)
	// Set changes the given variables at once and keeps the others.
	Set(ctx context.Context, vars map[string]string) error
}

// The variables of the boot contract, U-Boot's names where it has them
// (CONFIG_BOOTCOUNT_ENV counts boots in bootcount while upgrade_available
// is 1 and runs altbootcmd past bootlimit).
const (
	envSlot             = "afterlife_slot"     // the slot to boot: a or b
	envFallback         = "afterlife_fallback" // the slot to go back to
	envUpgradeAvailable = "upgrade_available"  // 1 while the slot is on trial
	envBootCount        = "bootcount"          // boots of the slot on trial
	envBootLimit        = "bootlimit"          // boots allowed before falling back
	defaultBootLimit    = 3
)

// EnvBootloader implements the boot contract on a BootEnv.
type EnvBootloader struct {
	Env BootEnv
	// BootLimit is written as bootlimit when the slot is marked pending
	// (default 3).
	BootLimit int
}

func (b EnvBootloader) MarkPending(ctx context.Context, slot, fallback string) error {
	limit := b.BootLimit
	if limit <= 0 {
		limit = defaultBootLimit
	}
	vars := map[string]string{envSlot: slot, envFallback: fallback, envBootCount: "0", envBootLimit: strconv.Itoa(limit), envUpgradeAvailable: "1"}
	if fallback == "" {
		// Nothing to go back to: the first install is not on trial.
		vars[envUpgradeAvailable] = "0"
	}
	return b.Env.Set(ctx, vars)
}

func (b EnvBootloader) Confirm(ctx context.Context) error {
	return b.Env.Set(ctx, map[string]string{envUpgradeAvailable: "0", envBootCount: "0"})
}

func (b EnvBootloader) Fallback(ctx context.Context) error {
	env, err := b.Env.Load(ctx)
	if err != nil {
		return err
	}
	vars := map[string]string{envUpgradeAvailable: "0", envBootCount: "0"}
	if fb := env[envFallback]; fb == slotA || fb == slotB {
		vars[envSlot] = fb
	}
	return b.Env.Set(ctx, vars)
}

func (b EnvBootloader) Booted(ctx context.Context) (string, bool, error) {
	env, err := b.Env.Load(ctx)
	if err != nil {
		return "", false, err
	}
	return env[envSlot], env[envUpgradeAvailable] == "1", nil
}

// BootSettings say which Bootloader the device uses; they are remembered
// in config.json under "boot".
type BootSettings struct {
	// Kind is "" (the A/B directory alone: "current" is what runs),
	// "grubenv" (a GRUB environment block file at EnvFile) or "uboot"
	// (U-Boot's environment through PrintEnv and SetEnv).
	Kind string `json:"kind,omitempty"`
	// EnvFile is the GRUB environment block (default StateDir/grubenv).
	EnvFile string `json:"env_file,omitempty"`
	// PrintEnv and SetEnv are U-Boot's tools (default fw_printenv and
	// fw_setenv from libubootenv).
	PrintEnv string `json:"printenv,omitempty"`
	SetEnv   string `json:"setenv,omitempty"`
}

// Kinds of BootSettings.
const (
	BootNone    = ""
	BootGRUBEnv = "grubenv"
	BootUBoot   = "uboot"
)

// ParseBootSettings reads the --bootloader flag: "", "grubenv[:FILE]" or
// "uboot[:PRINTENV,SETENV]".
func ParseBootSettings(s string) (BootSettings, error) {
	kind, arg, _ := strings.Cut(s, ":")
	switch kind {
	case "", "none":
		return BootSettings{Kind: "none"}, nil
	case BootGRUBEnv:
		return BootSettings{Kind: BootGRUBEnv, EnvFile: arg}, nil
	case BootUBoot:
		b := BootSettings{Kind: BootUBoot}
		if arg != "" {
			p, s, ok := strings.Cut(arg, ",")
			if !ok {
				return b, errs.E(errs.Invalid, "device: --bootloader uboot:%s: want uboot:PRINTENV,SETENV", arg)
			}
			b.PrintEnv, b.SetEnv = p, s
		}
		return b, nil
	}
	return BootSettings{}, errs.E(errs.Invalid, "device: --bootloader %q: want none, grubenv[:FILE] or uboot[:PRINTENV,SETENV]", s)
}

func (s BootSettings) String() string {
	switch s.Kind {
	case BootGRUBEnv:
		return "GRUB environment block " + s.EnvFile
	case BootUBoot:
		return "U-Boot environment (" + s.PrintEnv + ", " + s.SetEnv + ")"
	}
	return "none (the A/B directory's current link)"
}

// bootloader builds the Bootloader the settings name; nil for none.
func (s BootSettings) bootloader(stateDir string) (Bootloader, error) {
	switch s.Kind {
	case "", "none":
		return nil, nil
	case BootGRUBEnv:
		p := s.EnvFile
		if p == "" {
			p = filepath.Join(stateDir, "grubenv")
		}
		return EnvBootloader{Env: GRUBEnvFile{Path: p}}, nil
	case BootUBoot:
		return EnvBootloader{Env: UBootEnv{PrintEnv: s.PrintEnv, SetEnv: s.SetEnv}}, nil
	}
	return nil, errs.E(errs.Invalid, "device: boot kind %q in config.json (key boot): want none, grubenv or uboot (--bootloader)", s.Kind)
}

// GRUBEnvFile is a GRUB environment block: 1024 bytes, a header line,
// name=value lines, padded with '#'. GRUB reads it with load_env and
// writes it with save_env; grub-editenv and shell scripts read it too.
type GRUBEnvFile struct{ Path string }

const (
	grubEnvHeader = "# GRUB Environment Block\n"
	grubEnvSize   = 1024
)

func (g GRUBEnvFile) Load(context.Context) (map[string]string, error) {
	b, err := os.ReadFile(g.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]string{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("device: read boot environment: %w", err)
	}
	if !bytes.HasPrefix(b, []byte(grubEnvHeader)) {
		return nil, errs.E(errs.Invalid, "device: %s is not a GRUB environment block", g.Path)
	}
	env := map[string]string{}
	for _, line := range strings.Split(string(b[len(grubEnvHeader):]), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(k, "#") {
			env[k] = v
		}
	}
	return env, nil
}

func (g GRUBEnvFile) Set(ctx context.Context, vars map[string]string) error {
	env, err := g.Load(ctx)
	if err != nil {
		return err
	}
	for k, v := range vars {
		env[k] = v
	}
	var b strings.Builder
	b.WriteString(grubEnvHeader)
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		b.WriteString(k + "=" + env[k] + "\n")
	}
	if b.Len() > grubEnvSize {
		return errs.E(errs.TooLarge, "device: the boot environment %s would exceed %d bytes", g.Path, grubEnvSize)
	}
	b.WriteString(strings.Repeat("#", grubEnvSize-b.Len()))
	if err := writeFileSync(g.Path, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("device: write boot environment: %w", err)
	}
	return nil
}

// UBootEnv reads and writes U-Boot's environment with libubootenv's
// fw_printenv (which prints name=value lines) and fw_setenv -s FILE
// (which applies "name value" lines at once).
type UBootEnv struct{ PrintEnv, SetEnv string }

func (u UBootEnv) tools() (string, string) {
	p, s := u.PrintEnv, u.SetEnv
	if p == "" {
		p = "fw_printenv"
	}
	if s == "" {
		s = "fw_setenv"
	}
	return p, s
}

func (u UBootEnv) Load(ctx context.Context) (map[string]string, error) {
	printenv, _ := u.tools()
	out, err := exec.CommandContext(ctx, printenv).Output()
	if err != nil {
		return nil, fmt.Errorf("device: %s: %w", printenv, err)
	}
	env := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			env[k] = v
		}
	}
	return env, nil
}

func (u UBootEnv) Set(ctx context.Context, vars map[string]string) error {
	_, setenv := u.tools()
	f, err := os.CreateTemp("", "afterlife-fw-setenv-*")
	if err != nil {
		return fmt.Errorf("device: %s: %w", setenv, err)
	}
	defer os.Remove(f.Name())
	keys := make([]string, 0, len(vars))
	for k := range vars {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(f, "%s %s\n", k, vars[k])
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("device: %s: %w", setenv, err)
	}
	if out, err := exec.CommandContext(ctx, setenv, "-s", f.Name()).CombinedOutput(); err != nil {
		return fmt.Errorf("device: %s -s: %w: %s", setenv, err, bytes.TrimSpace(out))
	}
	return nil
}
