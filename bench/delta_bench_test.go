package bench

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/afterlife-oss/afterlife/recipes/examples"
	"github.com/afterlife-oss/afterlife/registry/device"
)

// camImage builds example (a), the afterlife-cam daemon for linux/arm, at
// the given version and packs it as its recipe does (a tar with fixed
// owners and times); it returns the tar and its gzip -9 (the firmware
// file the recipe publishes).
func camImage(b *testing.B, version string) (tarball, gz []byte) {
	b.Helper()
	src, err := examples.Dir("afterlife-cam")
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	if err := os.CopyFS(dir, src); err != nil {
		b.Fatal(err)
	}
	main := filepath.Join(dir, "cmd", "afterlife-camd", "main.go")
	code, err := os.ReadFile(main)
	if err != nil {
		b.Fatal(err)
	}
	code = bytes.Replace(code, []byte(`const version = "1.0.0"`), []byte(`const version = "`+version+`"`), 1)
	if version != "1.0.0" {
		// The next version fixes something too: a new route, as a bug
		// fix or a small feature adds code in the middle of the binary.
		code = bytes.Replace(code, []byte(`	return mux
}`), []byte(`	mux.HandleFunc("GET /version", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "afterlife-cam", version)
	})
	return mux
}`), 1)
	}
	if err := os.WriteFile(main, code, 0o644); err != nil {
		b.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module afterlife.example/cam\n\ngo 1.26\n"), 0o644)
	bin := filepath.Join(dir, "afterlife-camd")
	cmd := exec.Command("go", "build", "-trimpath", "-buildvcs=false", "-ldflags=-buildid=", "-o", bin, "./cmd/afterlife-camd")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=arm", "GOARM=7", "GOFLAGS=", "GOTOOLCHAIN=local")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("build example (a) %s: %v\n%s", version, err, out)
	}
	daemon, err := os.ReadFile(bin)
	if err != nil {
		b.Fatal(err)
	}
	mtime := time.Unix(1_700_000_000, 0)
	var t bytes.Buffer
	tw := tar.NewWriter(&t)
	for _, f := range []struct {
		name string
		mode int64
		data []byte
	}{
		{"./etc/afterlife/release", 0o644, []byte("firmware=afterlife-cam\nversion=" + version + "\n")},
		{"./usr/sbin/afterlife-camd", 0o755, daemon},
	} {
		tw.WriteHeader(&tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.data)), ModTime: mtime, Format: tar.FormatGNU})
		tw.Write(f.data)
	}
	tw.Close()
	var z bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&z, gzip.BestCompression)
	zw.Write(t.Bytes())
	zw.Close()
	return t.Bytes(), z.Bytes()
}

// BenchmarkDeltaSaving measures what a delta update saves between two
// versions of example (a) (1.0.0 and 1.0.1 of the afterlife-cam daemon,
// which adds a route):
// the published gzip image, as the recipe packs it, and the same image
// uncompressed, which is what a firmware meant for deltas ships. It also
// reports the memory a device allocates applying the delta.
func BenchmarkDeltaSaving(b *testing.B) {
	need(b, "go")
	oldTar, oldGz := camImage(b, "1.0.0")
	newTar, newGz := camImage(b, "1.0.1")
	for _, img := range []struct {
		name     string
		old, new []byte
	}{{"gzip", oldGz, newGz}, {"tar", oldTar, newTar}} {
		b.Run(img.name, func(b *testing.B) {
			var delta bytes.Buffer
			for b.Loop() {
				delta.Reset()
				if err := device.EncodeDelta(&delta, img.old, img.new); err != nil {
					b.Fatal(err)
				}
			}
			var got bytes.Buffer
			alloc := allocated(func() {
				if err := device.ApplyDelta(&got, bytes.NewReader(delta.Bytes()), img.old, int64(len(img.new))); err != nil {
					b.Fatal(err)
				}
			})
			if !bytes.Equal(got.Bytes(), img.new) {
				b.Fatal("the delta did not rebuild the image")
			}
			b.ReportMetric(float64(len(img.new)), "image-bytes")
			b.ReportMetric(float64(delta.Len()), "delta-bytes")
			b.ReportMetric(100-100*float64(delta.Len())/float64(len(img.new)), "saved-%")
			b.ReportMetric(float64(alloc)/(1<<20), "apply-MiB")
			b.ReportMetric(float64(zstdPatchFrom(b, img.old, img.new)), "zstd-cli-delta-bytes")
		})
	}
}

// BenchmarkDeltaApplyMemory reports what a device allocates to apply a
// delta between two 64 MiB images, beside the images' size (the figure
// docs/device-client.md states), and what the registry allocates to make
// it.
func BenchmarkDeltaApplyMemory(b *testing.B) {
	const size = 64 << 20
	old := bytes.Repeat([]byte(strings.Repeat("afterlife firmware block ", 40)+"\n"), size/1001+1)[:size]
	for i := 0; i < size; i += 4093 {
		old[i] = byte(i / 4093)
	}
	newImg := bytes.Clone(old)
	copy(newImg[size/3:], "a change in the next version")
	var delta bytes.Buffer
	encode := allocated(func() {
		if err := device.EncodeDelta(&delta, old, newImg); err != nil {
			b.Fatal(err)
		}
	})
	var alloc uint64
	for b.Loop() {
		alloc = allocated(func() {
			if err := device.ApplyDelta(discard{}, bytes.NewReader(delta.Bytes()), old, size); err != nil {
				b.Fatal(err)
			}
		})
	}
	b.ReportMetric(float64(size)/(1<<20), "image-MiB")
	b.ReportMetric(float64(alloc)/(1<<20), "apply-MiB")
	b.ReportMetric(float64(encode)/(1<<20), "encode-MiB")
}

// zstdPatchFrom is the size of what Debian's `zstd --patch-from` makes of
// the same two images, the baseline.
func zstdPatchFrom(b *testing.B, old, new []byte) int {
	dir := b.TempDir()
	o, n, d := filepath.Join(dir, "old"), filepath.Join(dir, "new"), filepath.Join(dir, "delta")
	os.WriteFile(o, old, 0o644)
	os.WriteFile(n, new, 0o644)
	if out, err := exec.Command(need(b, "zstd")["zstd"], "-q", "-f", "--patch-from="+o, n, "-o", d).CombinedOutput(); err != nil {
		b.Fatalf("zstd --patch-from: %v\n%s", err, out)
	}
	fi, err := os.Stat(d)
	if err != nil {
		b.Fatal(err)
	}
	return int(fi.Size())
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// allocated is how many bytes fn allocates.
func allocated(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}
