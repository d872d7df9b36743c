package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/afterlife-oss/afterlife/internal/testenv"
	"github.com/afterlife-oss/afterlife/registry/fwupd"
	"github.com/afterlife-oss/afterlife/registry/fwupd/fwupdtest"
)

// TestAnFwupdDeviceTakesAReleaseFromARunningServer follows a release from
// a real build on a real server to fwupd's fake webcam: the product
// declares an instance id, the release is published on stable, serve
// exports it, and fwupdtool refreshes the remote, finds the release and
// installs it.
func TestAnFwupdDeviceTakesAReleaseFromARunningServer(t *testing.T) {
	srv := testenv.Serve(t, testenv.ServeOptions{Args: []string{"--allow-local-repos", "--local-builders", "2", "--fwupd-every", "1s"}})
	f := seedAccess(t, srv) // its product declares ACME\CAM; seeding waits until the release is exported
	scratch := fwupdtest.New(t, t.TempDir(), `ACME\CAM`)
	// The fake webcam is at 1.2.2 and takes nothing older than 1.2.0: publish
	// the build again as 2.0.0 and wait for the remote to list it.
	if code := apiJSON(t, "POST", srv.URL+"/v1/releases", f.byKey["maintainer-acme"].token,
		map[string]string{"build_id": f.build, "product": f.product, "version": "2.0.0", "channel": "stable"}, nil); code != 201 {
		t.Fatalf("publish 2.0.0: %d", code)
	}
	cabName := regexp.MustCompile(`<location>[^<]*/fwupd/cabs/(acme-cam-2\.0\.0-[^<]+)</location>`)
	var cabFile string
	testenv.Eventually(t, time.Minute, func() error {
		m := cabName.FindSubmatch(unzstdBody(t, srv.URL+fwupd.MetadataPath))
		if m == nil {
			return fmt.Errorf("the fwupd metadata does not list 2.0.0 yet")
		}
		cabFile = string(m[1])
		return nil
	})

	t.Run("the product page tells an owner how to opt in", func(t *testing.T) {
		page := string(fwupdtest.Get(t, srv.URL+"/products/"+f.product))
		for _, want := range []string{fwupd.ConfPath, fwupd.CAPath, "disabled until you enable it", "Enabled=true", "/etc/fwupd/remotes.d/"} {
			if !strings.Contains(page, want) {
				t.Fatalf("the product page does not say %q", want)
			}
		}
	})
	conf := scratch.AddRemote(t, srv.URL+fwupd.ConfPath, srv.URL+fwupd.CAPath, fwupd.RemoteID, true)
	t.Run("the served remote names the server", func(t *testing.T) {
		if !strings.Contains(conf, "MetadataURI="+srv.URL+fwupd.MetadataPath) {
			t.Fatalf("conf:\n%s", conf)
		}
	})
	t.Run("fwupdtool refreshes the remote and finds the release on the community branch", func(t *testing.T) {
		scratch.MustRun(t, "refresh", "--force")
		out := scratch.MustRun(t, "search", "Acme")
		if !strings.Contains(out, "2.0.0") || !strings.Contains(out, "community") || !strings.Contains(out, srv.URL+"/builds/"+f.build) {
			t.Fatalf("fwupdtool search:\n%s", out)
		}
	})
	t.Run("fwupdtool installs the cabinet the remote serves", func(t *testing.T) {
		cab := filepath.Join(t.TempDir(), cabFile)
		fwupdtest.Write(t, cab, fwupdtest.Get(t, srv.URL+fwupd.Prefix+"cabs/"+cabFile), 0o644)
		scratch.MustRun(t, "install", "--allow-branch-switch", cab, fwupdtest.FakeWebcamGUID)
		if out := scratch.MustRun(t, "get-history", "--json"); !strings.Contains(out, `"2.0.0"`) {
			t.Fatalf("fwupd's history does not record 2.0.0:\n%s", out)
		}
	})
	if _, err := os.Stat(scratch.MetadataFile(fwupd.RemoteID)); err != nil {
		t.Fatalf("fwupd kept no metadata of the remote: %v", err)
	}
}

// unzstdBody fetches url and inflates it; an error gives nil.
func unzstdBody(t *testing.T, url string) []byte {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	zr, err := zstd.NewReader(resp.Body)
	if err != nil {
		return nil
	}
	defer zr.Close()
	b, _ := io.ReadAll(zr)
	return b
}
