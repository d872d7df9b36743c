// The systemd units: parsing, hardening and systemd-analyze verify.

package deploy

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// unitFile is a parsed unit: section → key → values in order.
type unitFile map[string]map[string][]string

func parseUnit(t *testing.T, path string) unitFile {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	u := unitFile{}
	section := ""
	text := strings.ReplaceAll(string(b), "\\\n", " ")
	for i, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s:%d: not a key=value line in a section: %q", path, i+1, line)
			}
			u[section][k] = append(u[section][k], v)
		}
	}
	return u
}

// has reports whether any value of key starts with prefix.
func (u unitFile) has(section, key, prefix string) bool {
	for _, v := range u[section][key] {
		if strings.HasPrefix(v, prefix) {
			return true
		}
	}
	return false
}

func (u unitFile) get(section, key string) (string, bool) {
	v := u[section][key]
	if len(v) == 0 {
		return "", false
	}
	return v[len(v)-1], true
}

func readEnvFile(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "#"))
		if k, _, ok := strings.Cut(line, "="); ok && regexp.MustCompile(`^[A-Z][A-Z0-9_]*$`).MatchString(k) {
			names = append(names, k)
		}
	}
	return names
}

func TestSystemdUnitsAreHardenedAndValid(t *testing.T) {
	common := []string{"DynamicUser=yes", "StateDirectory=", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes",
		"NoNewPrivileges=yes", "LockPersonality=yes", "CapabilityBoundingSet=", "Restart=on-failure", "EnvironmentFile=/etc/afterlife/"}
	cases := []struct {
		unit, instance string
		want, absent   []string
		maxExposure    float64
	}{
		{"afterlife.service", "afterlife.service",
			[]string{"MemoryDenyWriteExecute=yes", "SystemCallFilter=@system-service", "RestrictNamespaces=yes", "EnvironmentFile=/etc/afterlife/serve.env"},
			nil, 2.0},
		{"afterlife-builder@.service", "afterlife-builder@1.service",
			[]string{"RestrictNamespaces=user mnt pid net ipc uts cgroup"},
			[]string{"MemoryDenyWriteExecute", "SystemCallFilter", "ProtectKernelTunables", "ProtectKernelLogs", "ProtectProc", "ProcSubset", "PrivateUsers"},
			5.0},
	}
	analyze := requireTool(t, "systemd-analyze", "systemd")
	root := systemdRoot(t)
	for _, c := range cases {
		t.Run(c.unit+" has its hardening and passes systemd-analyze", func(t *testing.T) {
			u := parseUnit(t, filepath.Join("systemd", c.unit))
			for _, kv := range append(append([]string{}, common...), c.want...) {
				k, v, _ := strings.Cut(kv, "=")
				got, _ := u.get("Service", k)
				// An empty CapabilityBoundingSet= means "no capability".
				if !u.has("Service", k, v) || (k == "CapabilityBoundingSet" && got != "") {
					t.Errorf("[Service] %s = %q, want %q", k, got, kv)
				}
			}
			for _, k := range c.absent {
				if _, ok := u.get("Service", k); ok {
					t.Errorf("[Service] sets %s, which breaks bubblewrap or the builds", k)
				}
			}
			var stderr bytes.Buffer
			verify := exec.Command(analyze, "verify", "--root="+root, c.instance)
			verify.Stderr = &stderr
			if err := verify.Run(); err != nil || stderr.Len() > 0 {
				t.Errorf("systemd-analyze verify %s: %v\n%s", c.instance, err, stderr.String())
			}
			out, err := exec.Command(analyze, "security", "--offline=true", "--root="+root, c.instance).CombinedOutput()
			if err != nil {
				t.Fatalf("systemd-analyze security %s: %v\n%s", c.instance, err, out)
			}
			m := regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`).FindSubmatch(out)
			if m == nil {
				t.Fatalf("systemd-analyze security printed no exposure level:\n%s", out)
			}
			if got, _ := strconv.ParseFloat(string(m[1]), 64); got > c.maxExposure {
				t.Errorf("exposure level %.1f, want at most %.1f:\n%s", got, c.maxExposure, out)
			}
		})
	}
}

// systemdRoot is a directory tree that systemd-analyze --root accepts: the
// host's system units, the afterlife binary where ExecStart expects it, and
// our units.
func systemdRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	units := filepath.Join(root, "usr/lib/systemd/system")
	if err := os.CopyFS(units, os.DirFS("/usr/lib/systemd/system")); err != nil {
		t.Fatalf("copy the host's systemd units: %v", err)
	}
	etc := filepath.Join(root, "etc/systemd/system")
	bin := filepath.Join(root, "usr/local/bin")
	for _, d := range []string{etc, bin} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, src := range map[string]string{"afterlife": afterlifeBin, "afterlife-device": deviceBin} {
		if err := os.Link(src, filepath.Join(bin, name)); err != nil {
			if err := os.WriteFile(filepath.Join(bin, name), mustRead(t, src), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, u := range []string{"afterlife.service", "afterlife-builder@.service", "afterlife-device.service"} {
		if err := os.WriteFile(filepath.Join(etc, u), mustRead(t, filepath.Join("systemd", u)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// The device unit runs as root (it writes a slot and the bootloader's
// environment, and may reboot), so it is not in the table above: it gets
// what confines a root service without stopping it from doing its job.
func TestTheDeviceUnitIsConfinedAndValid(t *testing.T) {
	analyze := requireTool(t, "systemd-analyze", "systemd")
	root := systemdRoot(t)
	u := parseUnit(t, filepath.Join("systemd", "afterlife-device.service"))
	for _, kv := range []string{"StateDirectory=afterlife", "ProtectSystem=strict", "ReadWritePaths=-/boot", "ProtectHome=yes", "PrivateTmp=yes",
		"NoNewPrivileges=yes", "RestrictNamespaces=yes", "MemoryDenyWriteExecute=yes", "LockPersonality=yes", "Restart=on-failure",
		"EnvironmentFile=-/etc/afterlife/device.env", "SystemCallFilter=@system-service"} {
		k, v, _ := strings.Cut(kv, "=")
		if got, _ := u.get("Service", k); got != v {
			t.Errorf("[Service] %s = %q, want %q", k, got, v)
		}
	}
	for _, k := range []string{"DynamicUser", "PrivateDevices", "CapabilityBoundingSet"} {
		if _, ok := u.get("Service", k); ok {
			t.Errorf("[Service] sets %s, which keeps it from writing raw flash or rebooting", k)
		}
	}
	exec1, _ := u.get("Service", "ExecStart")
	args := strings.Fields(exec1)
	if len(args) < 2 || args[0] != "/usr/local/bin/afterlife-device" || args[1] != "run" {
		t.Fatalf("ExecStart = %q, want afterlife-device run", exec1)
	}
	help, err := exec.Command(deviceBin, "run", "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("afterlife-device run --help: %v\n%s", err, help)
	}
	for _, a := range args[2:] {
		if name, ok := strings.CutPrefix(a, "--"); ok && !strings.Contains(string(help), "--"+strings.SplitN(name, "=", 2)[0]+" ") {
			t.Errorf("ExecStart passes %s, which afterlife-device run --help does not declare", a)
		}
	}
	if !strings.Contains(string(help), "AFTERLIFE_DEVICE_INTERVAL") {
		t.Error("afterlife-device run --help does not declare AFTERLIFE_DEVICE_INTERVAL, which the unit's env file may set")
	}
	var stderr bytes.Buffer
	verify := exec.Command(analyze, "verify", "--root="+root, "afterlife-device.service")
	verify.Stderr = &stderr
	if err := verify.Run(); err != nil || stderr.Len() > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, stderr.String())
	}
	out, err := exec.Command(analyze, "security", "--offline=true", "--root="+root, "afterlife-device.service").CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("systemd-analyze security printed no exposure level:\n%s", out)
	}
	t.Logf("exposure level %s", m[1])
	if got, _ := strconv.ParseFloat(string(m[1]), 64); got > 4.5 {
		t.Errorf("exposure level %.1f, want at most 4.5:\n%s", got, out)
	}
}
