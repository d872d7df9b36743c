package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/afterlife-oss/afterlife/internal/testenv"
)

const downloadSize = 256 << 20

// cli runs the afterlife binary against srv and returns its stdout.
func cli(b *testing.B, srv *testenv.Server, token string, args ...string) string {
	b.Helper()
	cmd := exec.Command(testenv.Binary(b), append(args, "--server", srv.URL, "--token", token)...)
	cmd.Dir = b.TempDir()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		b.Fatalf("afterlife %s: %v\n%s\n%s", strings.Join(args, " "), err, out.String(), errb.String())
	}
	return out.String()
}

// writeRandomFile writes size pseudo-random bytes (incompressible, so
// nothing in the path can cheat).
func writeRandomFile(b *testing.B, path string, size int64) {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 1<<20)
	for n := int64(0); n < size; n += int64(len(buf)) {
		for i := 0; i < len(buf); i += 8 {
			v := r.Uint64()
			for j := range 8 {
				buf[i+j] = byte(v >> (8 * j))
			}
		}
		if _, err := f.Write(buf[:min(int64(len(buf)), size-n)]); err != nil {
			b.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
}

// pairedMBps downloads a and b in turn, rounds times each, and returns
// each one's median throughput in MB/s: taking turns gives both the same
// share of whatever else the machine is doing.
func pairedMBps(tb testing.TB, a, b string, want int64, rounds int) (float64, float64) {
	tb.Helper()
	var ra, rb []float64
	for range rounds {
		ra = append(ra, getMBps(tb, a, want))
		rb = append(rb, getMBps(tb, b, want))
	}
	return median(ra), median(rb)
}

// getMBps GETs url to nowhere once and returns its throughput in MB/s.
func getMBps(tb testing.TB, url string, want int64) float64 {
	tb.Helper()
	start := time.Now()
	resp, err := http.Get(url)
	if err != nil {
		tb.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || n != want {
		tb.Fatalf("GET %s: %s, %d of %d bytes, %v", url, resp.Status, n, want, err)
	}
	return float64(n) / 1e6 / time.Since(start).Seconds()
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}

var depositID = regexp.MustCompile(`deposit (\S+) committed`)

// BenchmarkDownload deposits a 256 MiB file with the immediate policy
// through the vendor CLI into a real `afterlife serve`, downloads the
// released file, and compares with nginx serving the same file with
// sendfile, in turns (median of 5 each). afterlife sends the plaintext copy
// the release wrote into the blob store, with sendfile.
func BenchmarkDownload(b *testing.B) {
	need(b, "nginx")
	srv := testenv.Serve(b, testenv.ServeOptions{})
	cli(b, srv, srv.Token, "admin", "org", "create", "bench", "--name", "Bench Devices", "--kind", "vendor")
	vendor := strings.TrimSpace(cli(b, srv, srv.Token, "admin", "token", "create", "--name", "bench-vendor", "--role", "vendor", "--org", "bench"))
	cli(b, srv, vendor, "vendor", "product", "--id", "bench-cam", "--vendor", "bench", "--model", "Bench Cam", "--device-ids", "usb:bench")
	root := b.TempDir()
	file := filepath.Join(root, "sdk.bin")
	writeRandomFile(b, file, downloadSize)
	out := cli(b, srv, vendor, "vendor", "deposit", "--rights", "**=public", "--product", "bench-cam", "--policy", "immediate",
		"--state", filepath.Join(b.TempDir(), "state.json"), "--receipt", filepath.Join(b.TempDir(), "receipt.json"), file)
	m := depositID.FindStringSubmatch(out)
	if m == nil {
		b.Fatalf("no deposit id in %q", out)
	}
	var dep struct {
		State    string `json:"state"`
		Manifest []struct {
			Path string `json:"path"`
			Size int64  `json:"size"`
		} `json:"manifest"`
	}
	resp, err := http.Get(srv.URL + "/v1/deposits/" + m[1])
	if err != nil {
		b.Fatal(err)
	}
	err = json.NewDecoder(resp.Body).Decode(&dep)
	resp.Body.Close()
	if err != nil || len(dep.Manifest) != 1 {
		b.Fatalf("deposit %s: %s, %+v, %v", m[1], resp.Status, dep, err)
	}
	url := fmt.Sprintf("%s/v1/deposits/%s/files/%s", srv.URL, m[1], dep.Manifest[0].Path)
	ng := startNginx(b, root)
	for b.Loop() {
		al, nx := pairedMBps(b, url, ng.URL+"/sdk.bin", downloadSize, 5)
		b.ReportMetric(al, "afterlife-MB/s")
		b.ReportMetric(nx, "nginx-MB/s")
		figure("download 256 MiB: afterlife %.0f MB/s | nginx sendfile %.0f MB/s | ratio %.2f", al, nx, al/nx)
	}
}
