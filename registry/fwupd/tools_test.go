package fwupd_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/afterlife-oss/afterlife/internal/dbtest"
	"github.com/afterlife-oss/afterlife/internal/testenv"
	"github.com/afterlife-oss/afterlife/registry"
	"github.com/afterlife-oss/afterlife/registry/catalog"
	"github.com/afterlife-oss/afterlife/registry/fwupd"
	"github.com/afterlife-oss/afterlife/registry/fwupd/fwupdtest"
	"github.com/afterlife-oss/afterlife/registry/fwupd/remoteconf"
)

func TestFwupdsOwnToolsAcceptTheRemote(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, dbtest.SQLite(t))
	guid, err := catalog.FwupdGUID(demoInstanceID)
	if err != nil {
		t.Fatal(err)
	}
	e.release(t, "rel_1", "demo-cam", "2.0.0", registry.Stable, []byte("community firmware 2.0.0\n"), nil)
	e.release(t, "rel_t", "demo-cam", "3.0.0", registry.Testing, []byte("testing only\n"), nil)
	e.release(t, "rel_y", "demo-cam", "2.5.0", registry.Stable, []byte("yanked\n"), func(r *registry.Release) { r.Yanked = true })
	e.release(t, "rel_p", "no-fwupd", "1.0.0", registry.Stable, []byte("no guids\n"), nil)
	if g, err := e.remote.Export(ctx); err != nil || g == nil {
		t.Fatalf("export = %+v, %v", g, err)
	}
	scratch := fwupdtest.New(t, filepath.Join(e.dir, "fwupd"), demoInstanceID)
	files := filepath.Join(e.dir, "files")
	os.MkdirAll(files, 0o755)

	xml := string(unzstd(t, e.get(t, fwupd.MetadataPath)))
	t.Run("the metadata lists only stable, offered releases of products with fwupd GUIDs", func(t *testing.T) {
		for _, want := range []string{`version="2.0.0"`, "<branch>community</branch>", guid, "/builds/b1"} {
			if !strings.Contains(xml, want) {
				t.Fatalf("metadata lacks %s:\n%s", want, xml)
			}
		}
		for _, not := range []string{`version="3.0.0"`, `version="2.5.0"`, "Plain Box"} {
			if strings.Contains(xml, not) {
				t.Fatalf("metadata lists %s:\n%s", not, xml)
			}
		}
	})
	loc := regexp.MustCompile(`<location>` + regexp.QuoteMeta(e.url+fwupd.Prefix) + `(cabs/[^<]+)</location>`).FindStringSubmatch(xml)
	if loc == nil {
		t.Fatalf("no location in metadata:\n%s", xml)
	}
	cabFile := filepath.Join(files, filepath.Base(loc[1]))
	fwupdtest.Write(t, cabFile, e.get(t, fwupd.Prefix+loc[1]), 0o644)

	t.Run("gcab lists the cabinet", func(t *testing.T) {
		out, err := exec.Command("gcab", "--list", cabFile).CombinedOutput()
		if err != nil || !strings.Contains(string(out), fwupd.PayloadName) || !strings.Contains(string(out), fwupd.MetainfoName) || !strings.Contains(string(out), fwupd.JcatName) {
			t.Fatalf("gcab --list: %v\n%s", err, out)
		}
	})
	t.Run("fwupdtool get-details reads the cabinet", func(t *testing.T) {
		out := scratch.MustRun(t, "get-details", cabFile)
		t.Logf("fwupdtool get-details:\n%s", out)
		for _, want := range []string{"2.0.0", "community"} {
			if !strings.Contains(out, want) {
				t.Fatalf("get-details does not say %s:\n%s", want, out)
			}
		}
	})
	t.Run("fwupd trusts the cabinet's payload once the CA is in its firmware certificate directory", func(t *testing.T) {
		out := scratch.MustRun(t, "get-details", cabFile)
		if strings.Contains(out, "Trusted payload") {
			t.Fatalf("fwupd trusts the payload without the CA:\n%s", out)
		}
		ca := filepath.Join(scratch.FirmwareCertDir(), "afterlife-ca.pem")
		fwupdtest.Write(t, ca, e.get(t, fwupd.CAPath), 0o644)
		// fwupd checks metadata with this directory's certificates too;
		// the refresh tests below need it without.
		defer os.Remove(ca)
		out = scratch.MustRun(t, "get-details", cabFile)
		t.Logf("fwupdtool get-details with the CA:\n%s", out)
		if !strings.Contains(out, "Trusted payload") {
			t.Fatalf("fwupd does not trust the payload signed under the CA:\n%s", out)
		}
	})
	t.Run("jcat-tool verifies the metadata's checksum and signature with the CA", func(t *testing.T) {
		dir := filepath.Join(e.dir, "jcat")
		ca := filepath.Join(dir, "pki")
		os.MkdirAll(ca, 0o755)
		fwupdtest.Write(t, filepath.Join(ca, "afterlife-ca.pem"), e.get(t, fwupd.CAPath), 0o644)
		fwupdtest.Write(t, filepath.Join(dir, "firmware.xml.zst"), e.get(t, fwupd.MetadataPath), 0o644)
		fwupdtest.Write(t, filepath.Join(dir, "firmware.xml.zst.jcat"), e.get(t, fwupd.JcatPath), 0o644)
		cmd := exec.Command("jcat-tool", "verify", "--public-keys", ca, "firmware.xml.zst.jcat")
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		t.Logf("jcat-tool verify:\n%s", out)
		if err != nil || !strings.Contains(string(out), "PASSED sha256") || !strings.Contains(string(out), "PASSED pkcs7") {
			t.Fatalf("jcat-tool verify: %v\n%s", err, out)
		}
	})

	conf := scratch.AddRemote(t, e.url+fwupd.ConfPath, e.url+fwupd.CAPath, fwupd.RemoteID, false)
	t.Run("the remote as served is disabled until the owner enables it", func(t *testing.T) {
		if !strings.Contains(conf, "\nEnabled=false\n") {
			t.Fatalf("conf:\n%s", conf)
		}
		out := scratch.MustRun(t, "get-remotes", "--json")
		var rs struct {
			Remotes []struct {
				ID      string `json:"Id"`
				Enabled bool
			}
		}
		if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &rs); err != nil {
			t.Fatalf("get-remotes: %v\n%s", err, out)
		}
		for _, r := range rs.Remotes {
			if r.ID == fwupd.RemoteID {
				if r.Enabled {
					t.Fatalf("remote is enabled: %+v", r)
				}
				return
			}
		}
		t.Fatalf("fwupd does not list the remote:\n%s", out)
	})
	scratch.AddRemote(t, e.url+fwupd.ConfPath, e.url+fwupd.CAPath, fwupd.RemoteID, true)

	caFile := filepath.Join(scratch.MetadataCertDir(), fwupd.RemoteID+"-ca.pem")
	t.Run("fwupdtool refresh refuses the metadata without the CA certificate", func(t *testing.T) {
		ca, _ := os.ReadFile(caFile)
		os.Remove(caFile)
		defer os.WriteFile(caFile, ca, 0o644)
		out, err := scratch.Run(t, "refresh", "--force")
		t.Logf("fwupdtool refresh without the CA: %v\n%s", err, out)
		if err == nil {
			t.Fatalf("fwupdtool took metadata it cannot verify:\n%s", out)
		}
	})
	t.Run("fwupdtool refresh takes the remote's signed metadata", func(t *testing.T) {
		out := scratch.MustRun(t, "refresh", "--force")
		t.Logf("fwupdtool refresh:\n%s", out)
		if _, err := os.Stat(scratch.MetadataFile(fwupd.RemoteID)); err != nil {
			t.Fatalf("refresh stored no metadata: %v", err)
		}
	})
	t.Run("fwupdtool search finds the release on its branch", func(t *testing.T) {
		out := scratch.MustRun(t, "search", "AfterLife")
		t.Logf("fwupdtool search:\n%s", out)
		if !strings.Contains(out, "2.0.0") {
			t.Fatalf("search does not find 2.0.0:\n%s", out)
		}
	})
	t.Run("fwupdtool get-updates does not offer a release on a branch", func(t *testing.T) {
		out, _ := scratch.Run(t, "get-updates", "--json")
		t.Logf("fwupdtool get-updates:\n%s", out)
		if strings.Contains(out, `"2.0.0"`) {
			t.Fatalf("get-updates offers the community release:\n%s", out)
		}
	})
	t.Run("fwupdtool installs it on the fake device only when allowed to switch branch", func(t *testing.T) {
		out, err := scratch.Run(t, "install", cabFile, fwupdtest.FakeWebcamGUID)
		t.Logf("fwupdtool install without --allow-branch-switch: %v\n%s", err, out)
		if err == nil {
			t.Fatalf("installed without --allow-branch-switch:\n%s", out)
		}
		out = scratch.MustRun(t, "install", "--allow-branch-switch", cabFile, fwupdtest.FakeWebcamGUID)
		t.Logf("fwupdtool install --allow-branch-switch:\n%s", out)
		out = scratch.MustRun(t, "get-history", "--json")
		t.Logf("fwupdtool get-history:\n%s", out)
		if !strings.Contains(out, `"2.0.0"`) {
			t.Fatalf("fwupd's history does not record 2.0.0:\n%s", out)
		}
	})

	// A new release: the next generation switches both files at once.
	e.release(t, "rel_2", "demo-cam", "2.1.0", registry.Stable, []byte("community firmware 2.1.0\n"), nil)
	e.clock.Add(2 * interval)
	// fwupd takes metadata only when its PKCS#7 signing time (read by the
	// signing library from the system clock, in whole seconds) is newer
	// than the one it holds: let the system clock pass a second.
	signedIn := time.Now().Unix()
	testenv.Eventually(t, 5*time.Second, func() error {
		if time.Now().Unix() <= signedIn {
			return fmt.Errorf("still in the second the first generation was signed in")
		}
		return nil
	})
	if g, err := e.remote.Export(ctx); err != nil || g == nil || g.N != 2 {
		t.Fatalf("second export = %+v, %v", g, err)
	}
	t.Run("fwupdtool refresh takes the next generation", func(t *testing.T) {
		scratch.MustRun(t, "refresh", "--force")
		out := scratch.MustRun(t, "search", "AfterLife")
		if !strings.Contains(out, "2.1.0") {
			t.Fatalf("search does not find 2.1.0:\n%s", out)
		}
	})

	// A mirror keeps the remote's paths (registry/mirror): nginx serves
	// the metadata, its Jcat file, the CA and the cabinets as the origin
	// served them, with the mirror's own .conf, and the origin goes away.
	mirrorDir := filepath.Join(e.dir, "mirror")
	os.MkdirAll(filepath.Join(mirrorDir, "fwupd", "cabs"), 0o755)
	meta := e.get(t, fwupd.MetadataPath)
	for p, b := range map[string][]byte{fwupd.MetadataPath: meta, fwupd.JcatPath: e.get(t, fwupd.JcatPath), fwupd.CAPath: e.get(t, fwupd.CAPath)} {
		fwupdtest.Write(t, filepath.Join(mirrorDir, p), b, 0o644)
	}
	cabs := regexp.MustCompile(`<location>`+regexp.QuoteMeta(e.url+fwupd.Prefix)+`(cabs/[^<]+)</location>`).FindAllStringSubmatch(string(unzstd(t, meta)), -1)
	if len(cabs) != 2 {
		t.Fatalf("the metadata locates %d cabinets on the origin, want 2", len(cabs))
	}
	for _, c := range cabs {
		fwupdtest.Write(t, filepath.Join(mirrorDir, fwupd.Prefix, c[1]), e.get(t, fwupd.Prefix+c[1]), 0o644)
	}
	site := testenv.ServeStatic(t, mirrorDir)
	fwupdtest.Write(t, filepath.Join(mirrorDir, fwupd.ConfPath), []byte(remoteconf.Mirror(site.URL, e.url, "community")), 0o644)
	e.stop()
	mirrored := fwupdtest.New(t, filepath.Join(e.dir, "fwupd-mirror"), demoInstanceID)
	mconf := mirrored.AddRemote(t, site.URL+fwupd.ConfPath, site.URL+fwupd.CAPath, fwupd.RemoteID, true)
	t.Run("fwupdtool refresh takes the remote from a mirror without the origin", func(t *testing.T) {
		for _, want := range []string{"MetadataURI=" + site.URL + fwupd.MetadataPath, "FirmwareBaseURI=" + site.URL + "/fwupd/cabs\n", "Enabled=true"} {
			if !strings.Contains(mconf, want) {
				t.Fatalf("the mirror's .conf lacks %q:\n%s", want, mconf)
			}
		}
		mirrored.MustRun(t, "refresh", "--force")
		if out := mirrored.MustRun(t, "search", "AfterLife"); !strings.Contains(out, "2.1.0") {
			t.Fatalf("search on the mirror's metadata does not find 2.1.0:\n%s", out)
		}
	})
	t.Run("the release's cabinet resolves to the mirror and installs on the fake device", func(t *testing.T) {
		var rs struct {
			Remotes []struct {
				ID              string `json:"Id"`
				FirmwareBaseURI string `json:"FirmwareBaseUri"`
			}
		}
		out := mirrored.MustRun(t, "get-remotes", "--json")
		if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &rs); err != nil {
			t.Fatalf("get-remotes: %v\n%s", err, out)
		}
		base := ""
		for _, r := range rs.Remotes {
			if r.ID == fwupd.RemoteID {
				base = r.FirmwareBaseURI
			}
		}
		if base != site.URL+"/fwupd/cabs" {
			t.Fatalf("fwupd reads FirmwareBaseURI %q for the remote, want the mirror's %s/fwupd/cabs", base, site.URL)
		}
		var found struct {
			Releases []struct {
				Version   string
				Checksum  []string
				Locations []string
			}
		}
		out = mirrored.MustRun(t, "search", "AfterLife", "--json")
		if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &found); err != nil {
			t.Fatalf("search: %v\n%s", err, out)
		}
		for _, r := range found.Releases {
			if r.Version != "2.1.0" || len(r.Locations) == 0 {
				continue
			}
			// fwupd keeps the location's file name under FirmwareBaseURI
			// (fwupd_remote_build_firmware_uri); the origin is gone.
			cab := fwupdtest.Get(t, base+"/"+path.Base(r.Locations[0]))
			sum := sha256.Sum256(cab)
			if !slices.Contains(r.Checksum, hex.EncodeToString(sum[:])) {
				t.Fatalf("the mirror's cabinet has sha256 %x, the signed metadata states %v", sum, r.Checksum)
			}
			file := filepath.Join(e.dir, "from-mirror.cab")
			fwupdtest.Write(t, file, cab, 0o644)
			mirrored.MustRun(t, "install", "--allow-branch-switch", file, fwupdtest.FakeWebcamGUID)
			if out := mirrored.MustRun(t, "get-history", "--json"); !strings.Contains(out, `"2.1.0"`) {
				t.Fatalf("fwupd's history does not record 2.1.0 from the mirror:\n%s", out)
			}
			return
		}
		t.Fatalf("search finds no located 2.1.0:\n%s", out)
	})
}
