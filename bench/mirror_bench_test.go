package bench

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/afterlife-oss/afterlife/internal/testenv"
	"github.com/afterlife-oss/afterlife/registry/device"
	"github.com/afterlife-oss/afterlife/registry/mirror"
	"github.com/afterlife-oss/afterlife/registry/tuf"
)

// BenchmarkMirrorPullDemo pulls a full mirror of `afterlife serve --demo`
// into a fresh directory and reports the time of the pull and the
// mirror's size.
func BenchmarkMirrorPullDemo(b *testing.B) {
	base, err := os.UserCacheDir()
	if err != nil {
		b.Fatal(err)
	}
	cache := filepath.Join(base, "afterlife", "builder-cache")
	srv := testenv.Serve(b, testenv.ServeOptions{Args: []string{"--demo", "--builder-cache", cache}, Ready: 3 * time.Minute})
	testenv.Eventually(b, 8*time.Minute, func() error {
		_, err := os.Stat(filepath.Join(srv.Data, "demo.done"))
		switch {
		case err == nil:
			return nil
		case srv.Exited():
			return testenv.GiveUp(fmt.Errorf("the server exited before the demo finished\n%s", srv.LogTail()))
		}
		return fmt.Errorf("the demo did not finish (%v)\n%s", err, srv.LogTail())
	})
	benchPull(b, srv.URL, "demo")
}

// mirrorReleases is the size of the generated registry.
const mirrorReleases = 10_000

// BenchmarkMirrorPull10kReleases pulls a mirror of a registry of 10,000
// releases generated in process: a real TUF repository (hashed bins,
// consistent snapshots) signing 10,000 firmware targets of 4 KiB, each with
// its release answer, served over HTTP on 127.0.0.1.
func BenchmarkMirrorPull10kReleases(b *testing.B) {
	ctx := context.Background()
	repo, err := tuf.Open(ctx, tuf.NewMemStore(), filepath.Join(b.TempDir(), "keys"), time.Now)
	if err != nil {
		b.Fatal(err)
	}
	files := map[string][]byte{} // "/tuf/targets/<dir>/<sha>.<name>" → content
	var batch []tuf.Target
	start := time.Now()
	for i := range mirrorReleases {
		content := make([]byte, 4096)
		copy(content, fmt.Sprintf("firmware %d", i))
		sum := sha256.Sum256(content)
		hexsum := hex.EncodeToString(sum[:])
		product, version := fmt.Sprintf("prod-%d", i/10), fmt.Sprintf("1.%d.0", i%10)
		path := product + "/" + version + "/fw.bin"
		batch = append(batch, tuf.Target{Path: path, Length: int64(len(content)), SHA256: hexsum, Custom: map[string]any{
			"afterlife": device.SchemaVersion, "product": product, "version": version, "channel": "stable",
			"release_id": fmt.Sprintf("rel_%05d", i), "kind": "firmware", "community": true, "device_ids": []string{"usb:" + product}}})
		files["/tuf/targets/"+product+"/"+version+"/"+hexsum+".fw.bin"] = content
		if len(batch) == 1000 {
			if err := repo.Apply(ctx, batch, nil); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	fmt.Fprintf(os.Stderr, "bench: %d releases signed in %s\n", mirrorReleases, time.Since(start).Round(time.Millisecond))
	meta := repo.Handler()
	origin := serveHandler(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch p := r.URL.Path; {
		case strings.HasPrefix(p, "/tuf/targets/"):
			c, ok := files[p]
			if !ok {
				http.NotFound(w, r)
				return
			}
			http.ServeContent(w, r, "", time.Time{}, strings.NewReader(string(c)))
		case strings.HasPrefix(p, "/tuf/"):
			meta.ServeHTTP(w, r)
		case strings.HasPrefix(p, "/v1/releases/"):
			id := strings.TrimPrefix(p, "/v1/releases/")
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"id":%q,"version":"1.0.0","channel":"stable"}`, id)
		default:
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `{"error":{"code":"not_found","message":"not here"}}`)
		}
	}))
	benchPull(b, origin, "10k")
}

// benchPull pulls origin into a fresh directory per iteration, then once
// more into the last one (nothing changed), and reports both times and the
// mirror's size and file count.
func benchPull(b *testing.B, origin, name string) {
	ctx := context.Background()
	var dir string
	var full, again time.Duration
	n := 0
	for b.Loop() {
		dir = filepath.Join(b.TempDir(), "mirror")
		res, err := mirror.Pull(ctx, mirror.PullOptions{From: origin, Dir: dir})
		if err != nil {
			b.Fatal(err)
		}
		full += res.Took
		res, err = mirror.Pull(ctx, mirror.PullOptions{From: origin, Dir: dir})
		if err != nil {
			b.Fatal(err)
		}
		again += res.Took
		n++
	}
	var size int64
	var count int
	if err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		size += info.Size()
		count++
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	secs := full.Seconds() / float64(n)
	againSecs := again.Seconds() / float64(n)
	b.ReportMetric(secs, "pull-s")
	b.ReportMetric(againSecs, "repull-s")
	b.ReportMetric(float64(size)/(1<<20), "MiB")
	b.ReportMetric(float64(count), "files")
	figure("mirror pull of %s: %.2f s, %.1f MiB in %d files; a second pull with nothing new %.2f s", name, secs, float64(size)/(1<<20), count, againSecs)
}
