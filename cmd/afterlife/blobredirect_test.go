package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/afterlife-oss/afterlife/internal/testenv"
)

// A replica reaches MinIO at 127.0.0.1:PORT; clients are told localhost:PORT,
// the same server under another name, as devices outside compose reach
// MinIO under a name the replicas never use.
func TestBlobDownloadsRedirectOnlyToThePublicURL(t *testing.T) {
	mc := testenv.MinIO(t)
	_, port, _ := strings.Cut(mc.Endpoint, ":")
	public := "http://localhost:" + port
	data := []byte("CAM-200 datasheet, released")
	sum := sha256.Sum256(data)
	digest := "sha256:" + hex.EncodeToString(sum[:])

	for _, tc := range []struct {
		name      string
		blobsArgs string
		redirect  bool
	}{
		{"with a public URL the download redirects to a URL presigned for it", "&public_url=" + public, true},
		{"without one the replica streams the bytes", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := testenv.Serve(t, testenv.ServeOptions{
				Args: []string{"--blobs", mc.URL(mc.NewBucket(t, false)) + tc.blobsArgs, "--local-builders", "0"},
				Env:  []string{"AWS_ACCESS_KEY_ID=" + mc.AccessKey, "AWS_SECRET_ACCESS_KEY=" + mc.SecretKey},
			})
			as := []string{"--server", srv.URL, "--token", srv.Token}
			afterlife(t, true, append([]string{"admin", "org", "create", "acme"}, as...)...)
			afterlife(t, true, append([]string{"admin", "org", "create", "alice-lab", "--kind", "operator"}, as...)...)
			vendor, _ := afterlife(t, true, append([]string{"admin", "token", "create", "--name", "acme", "--role", "vendor", "--org", "acme"}, as...)...)
			builder, _ := afterlife(t, true, append([]string{"admin", "token", "create", "--name", "b1", "--role", "builder", "--operator", "alice-lab"}, as...)...)
			vendor, builder = strings.TrimSpace(vendor), strings.TrimSpace(builder)
			afterlife(t, true, "vendor", "product", "--id", "acme-cam", "--vendor", "acme", "--model", "Cam", "--device-ids", "usb:1d6b:0104", "--server", srv.URL, "--token", vendor)
			dir := t.TempDir()
			file := filepath.Join(dir, "datasheet.txt")
			if err := os.WriteFile(file, data, 0o644); err != nil {
				t.Fatal(err)
			}
			afterlife(t, true, "vendor", "deposit", "--rights", "**=public", "--product", "acme-cam", "--policy", "immediate", "--state", filepath.Join(dir, "state"),
				"--receipt", filepath.Join(dir, "r.json"), "--server", srv.URL, "--token", vendor, file)

			// A builder fetching an input by digest goes through blobhttp like
			// every download: firmware, TUF targets, build outputs.
			req, _ := http.NewRequest("GET", srv.URL+"/v1/blobs/"+digest, nil)
			req.Header.Set("Authorization", "Bearer "+builder)
			var resp *http.Response
			testenv.Eventually(t, 30*time.Second, func() error {
				r, err := noFollow.Do(req)
				if err != nil {
					return err
				}
				if r.StatusCode == http.StatusNotFound {
					r.Body.Close()
					return fmt.Errorf("the released file is not fetchable yet: %s", r.Status)
				}
				resp = r
				return nil
			})
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			loc := resp.Header.Get("Location")
			if !tc.redirect {
				if resp.StatusCode != http.StatusOK || string(body) != string(data) {
					t.Fatalf("got %d (Location %q), %q; want 200 with the file", resp.StatusCode, loc, body)
				}
				return
			}
			if resp.StatusCode != http.StatusTemporaryRedirect || !strings.HasPrefix(loc, public+"/") {
				t.Fatalf("got %d, Location %q; want 307 to %s/…", resp.StatusCode, loc, public)
			}
			got, err := http.Get(loc)
			if err != nil {
				t.Fatal(err)
			}
			defer got.Body.Close()
			fetched, _ := io.ReadAll(got.Body)
			if got.StatusCode != http.StatusOK || string(fetched) != string(data) {
				t.Fatalf("following the Location: %s, %q; want 200 with the file (the signature must hold for the public host)", got.Status, fetched)
			}
		})
	}
}

var noFollow = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
