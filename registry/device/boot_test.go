package device_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/afterlife-oss/afterlife/registry/device"
)

// fakeUBootTools writes fw_printenv and fw_setenv scripts that keep
// U-Boot's environment in a file, with libubootenv's interface:
// fw_printenv prints name=value lines, fw_setenv -s FILE applies
// "name value" lines.
func fakeUBootTools(t *testing.T) (printenv, setenv string) {
	t.Helper()
	dir := t.TempDir()
	env := filepath.Join(dir, "uboot.env")
	printenv, setenv = filepath.Join(dir, "fw_printenv"), filepath.Join(dir, "fw_setenv")
	scripts := map[string]string{
		printenv: "#!/bin/sh\ntouch " + env + "\ncat " + env + "\n",
		setenv: "#!/bin/sh\n[ \"$1\" = -s ] || { echo 'usage: fw_setenv -s FILE' >&2; exit 2; }\ntouch " + env + "\n" +
			"awk 'NR == FNR { v[$1] = substr($0, length($1) + 2); next } { split($0, kv, \"=\"); if (!(kv[1] in v)) print }" +
			" END { for (k in v) print k \"=\" v[k] }' \"$2\" " + env + " > " + env + ".new && mv " + env + ".new " + env + "\n",
	}
	for p, s := range scripts {
		if err := os.WriteFile(p, []byte(s), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return printenv, setenv
}

func TestTheBootContractOnEachEnvironment(t *testing.T) {
	printenv, setenv := fakeUBootTools(t)
	for _, tc := range []struct {
		name string
		env  device.BootEnv
	}{
		{"a GRUB environment block", device.GRUBEnvFile{Path: filepath.Join(t.TempDir(), "grubenv")}},
		{"U-Boot's environment through fw_printenv and fw_setenv", device.UBootEnv{PrintEnv: printenv, SetEnv: setenv}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			b := device.EnvBootloader{Env: tc.env}
			if err := tc.env.Set(ctx, map[string]string{"bootcmd": "run distro_bootcmd"}); err != nil {
				t.Fatal(err)
			}
			steps := []struct {
				name      string
				do        func() error
				slot      string
				trial     bool
				bootcount string
			}{
				{"the first install is not on trial", func() error { return b.MarkPending(ctx, "a", "") }, "a", false, "0"},
				{"a new slot is marked pending with the old one to fall back to", func() error { return b.MarkPending(ctx, "b", "a") }, "b", true, "0"},
				{"the bootloader counts a boot", func() error { return tc.env.Set(ctx, map[string]string{"bootcount": "1"}) }, "b", true, "1"},
				{"confirming ends the trial", func() error { return b.Confirm(ctx) }, "b", false, "0"},
				{"the next slot is on trial", func() error { return b.MarkPending(ctx, "a", "b") }, "a", true, "0"},
				{"falling back boots the old slot", func() error { return b.Fallback(ctx) }, "b", false, "0"},
			}
			for _, s := range steps {
				if err := s.do(); err != nil {
					t.Fatalf("%s: %v", s.name, err)
				}
				slot, trial, err := b.Booted(ctx)
				env, lerr := tc.env.Load(ctx)
				if err != nil || lerr != nil || slot != s.slot || trial != s.trial || env["bootcount"] != s.bootcount || env["bootlimit"] != "3" {
					t.Fatalf("%s: booted %q, trial %v, env %v (%v %v); want %s, %v, bootcount %s", s.name, slot, trial, env, err, lerr, s.slot, s.trial, s.bootcount)
				}
				if env["bootcmd"] != "run distro_bootcmd" {
					t.Fatalf("%s: the bootloader's own variables were lost: %v", s.name, env)
				}
			}
		})
	}
	t.Run("a GRUB environment block stays 1024 bytes", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "grubenv")
		if err := (device.GRUBEnvFile{Path: p}).Set(context.Background(), map[string]string{"afterlife_slot": "a"}); err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Stat(p); err != nil || fi.Size() != 1024 {
			t.Fatalf("grubenv: %v %v", fi, err)
		}
	})
}

// GRUB's own tool reads what the client writes and the client reads what
// GRUB's tool writes: the block is GRUB's format, not a look-alike.
func TestTheGRUBEnvironmentBlockIsGRUBs(t *testing.T) {
	editenv, err := exec.LookPath("grub-editenv")
	if err != nil {
		t.Fatal("grub-editenv is not installed: run scripts/test-deps.sh (Debian package grub-common)")
	}
	ctx := context.Background()
	p := filepath.Join(t.TempDir(), "grubenv")
	if out, err := exec.Command(editenv, p, "create").CombinedOutput(); err != nil {
		t.Fatalf("grub-editenv create: %v\n%s", err, out)
	}
	b := device.EnvBootloader{Env: device.GRUBEnvFile{Path: p}}
	if err := b.MarkPending(ctx, "b", "a"); err != nil {
		t.Fatalf("mark pending on a block grub-editenv created: %v", err)
	}
	out, err := exec.Command(editenv, p, "list").CombinedOutput()
	if err != nil {
		t.Fatalf("grub-editenv list: %v\n%s", err, out)
	}
	for _, want := range []string{"afterlife_slot=b\n", "afterlife_fallback=a\n", "upgrade_available=1\n", "bootcount=0\n", "bootlimit=3\n"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("grub-editenv list lacks %q:\n%s", want, out)
		}
	}
	// GRUB's fallback, as grub.cfg's save_env would write it.
	if out, err := exec.Command(editenv, p, "set", "afterlife_slot=a", "upgrade_available=0", "bootcount=0").CombinedOutput(); err != nil {
		t.Fatalf("grub-editenv set: %v\n%s", err, out)
	}
	slot, trial, err := b.Booted(ctx)
	if err != nil || slot != "a" || trial {
		t.Fatalf("after GRUB fell back: booted %q, trial %v, %v", slot, trial, err)
	}
}
