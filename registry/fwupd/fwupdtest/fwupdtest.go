// Package fwupdtest runs Debian's fwupd tools (fwupdtool with its test
// plugin from fwupd-tests) for tests, with fwupd's configuration and state
// in scratch directories (FWUPD_SYSCONFDIR, FWUPD_LOCALSTATEDIR, and
// FWUPD_LOCKDIR for fwupdtool's lock, which is machine-wide in /run/lock
// otherwise), so a test never reads or touches the machine's own fwupd and
// tests in parallel never wait for each other's lock.
package fwupdtest

import (
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// FakeWebcamGUID is the GUID of the fake webcam of fwupd's test plugin.
const FakeWebcamGUID = "b585990a-003e-5270-89d5-3705a17f9a43"

// Scratch is one fwupd configuration and state.
type Scratch struct {
	Etc, State, Lock string
}

// New makes a scratch fwupd under dir with test devices on, and a quirk
// that gives the fake webcam instanceID as an extra instance id (so it
// reports the GUID fwupd derives from it). The fake webcam is at 1.2.2 and
// accepts nothing older than 1.2.0.
func New(t testing.TB, dir, instanceID string) *Scratch {
	t.Helper()
	s := &Scratch{Etc: filepath.Join(dir, "etc"), State: filepath.Join(dir, "var"), Lock: filepath.Join(dir, "lock")}
	quirks := filepath.Join(s.State, "lib", "fwupd", "quirks.d")
	for _, d := range []string{filepath.Join(s.Etc, "fwupd", "remotes.d"), s.MetadataCertDir(), s.FirmwareCertDir(), quirks, s.Lock} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	Write(t, filepath.Join(s.Etc, "fwupd", "fwupd.conf"), []byte("[fwupd]\nTestDevices=true\n"), 0o600)
	Write(t, filepath.Join(quirks, "afterlife.quirk"), []byte("["+FakeWebcamGUID+"]\nGuid = "+instanceID+"\n"), 0o644)
	return s
}

// MetadataCertDir is fwupd's metadata certificate directory
// (/etc/pki/fwupd-metadata on Debian).
func (s *Scratch) MetadataCertDir() string { return filepath.Join(s.Etc, "pki", "fwupd-metadata") }

// FirmwareCertDir is fwupd's firmware (payload) certificate directory
// (/etc/pki/fwupd on Debian).
func (s *Scratch) FirmwareCertDir() string { return filepath.Join(s.Etc, "pki", "fwupd") }

// RemotesDir is where remotes' .conf files go.
func (s *Scratch) RemotesDir() string { return filepath.Join(s.Etc, "fwupd", "remotes.d") }

// MetadataFile is where fwupd keeps a remote's downloaded metadata.
func (s *Scratch) MetadataFile(remote string) string {
	return filepath.Join(s.State, "lib", "fwupd", "metadata", remote, "firmware.xml.zst")
}

// AddRemote downloads a served remote's .conf and CA certificate into the
// scratch fwupd, enabling the remote when enable is set.
func (s *Scratch) AddRemote(t testing.TB, confURL, caURL, remote string, enable bool) string {
	t.Helper()
	conf := string(Get(t, confURL))
	if enable {
		conf = strings.Replace(conf, "\nEnabled=false\n", "\nEnabled=true\n", 1)
	}
	Write(t, filepath.Join(s.RemotesDir(), remote+".conf"), []byte(conf), 0o644)
	Write(t, filepath.Join(s.MetadataCertDir(), remote+"-ca.pem"), Get(t, caURL), 0o644)
	return conf
}

var progress = regexp.MustCompile(`(?m)^.*…: *\d+%.*\n?`)

// Run runs fwupdtool with only its test plugin loaded and no prompts.
func (s *Scratch) Run(t testing.TB, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command("fwupdtool", append(args, "--plugins", "test", "--no-reboot-check", "--assume-yes")...)
	cmd.Env = append(os.Environ(), "FWUPD_SYSCONFDIR="+s.Etc, "FWUPD_LOCALSTATEDIR="+s.State, "FWUPD_LOCKDIR="+s.Lock, "LANG=C.UTF-8")
	out, err := cmd.CombinedOutput()
	return progress.ReplaceAllString(string(out), ""), err
}

// MustRun is Run that fails the test on an error.
func (s *Scratch) MustRun(t testing.TB, args ...string) string {
	t.Helper()
	out, err := s.Run(t, args...)
	if err != nil {
		t.Fatalf("fwupdtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// Get fetches url and fails the test unless it answers 200.
func Get(t testing.TB, url string) []byte {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	return b
}

// Write writes a file and fails the test on an error.
func Write(t testing.TB, path string, b []byte, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, b, mode); err != nil {
		t.Fatal(err)
	}
}
