package escrow

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/afterlife-oss/afterlife/escrow/manifest"
	"github.com/afterlife-oss/afterlife/internal/blob"
	"github.com/afterlife-oss/afterlife/internal/blob/fsstore"
	"github.com/afterlife-oss/afterlife/internal/blob/s3store"
	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/httpapi"
	"github.com/afterlife-oss/afterlife/internal/principal"
	"github.com/afterlife-oss/afterlife/internal/testenv"
)

type tokens map[string]principal.Principal

func (tk tokens) Authenticate(_ context.Context, s string) (principal.Principal, error) {
	if p, ok := tk[s]; ok {
		return p, nil
	}
	return principal.Principal{}, errs.E(errs.Unauthenticated, "unknown token")
}

var testTokens = tokens{"acme": acme, "globex": globex, "admin": admin, "builder": builder}

func serve(t testing.TB, s *Service) *httptest.Server {
	t.Helper()
	api := httpapi.New(httpapi.Options{Auth: testTokens})
	s.Register(api.V1(), api.Root())
	srv := httptest.NewServer(api.Engine())
	t.Cleanup(srv.Close)
	return srv
}

type answer struct {
	status int
	header http.Header
	body   string
}

func call(t testing.TB, srv *httptest.Server, method, path, token string, body io.Reader) answer {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, string(b)}
}

func TestTheHTTPAPIGuardsSealedDepositsAndServesReleasedOnes(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		srv := serve(t, e.svc)
		sealed, _ := e.deposit(t, acme, "demo-cam", "on=2099-01-01", demoFiles)
		public, _ := e.deposit(t, acme, "other-cam", "immediate", demoFiles)
		create, _ := json.Marshal(CreateRequest{Product: "demo-cam", Policy: "immediate", Manifest: entries(map[string]string{"a.txt": "hello"})})
		str := func(s string) io.Reader { return strings.NewReader(s) }

		tests := []struct {
			name, method, path, token string
			body                      io.Reader
			want                      int
		}{
			{"anonymous callers do not see a sealed deposit", "GET", "/v1/deposits/" + sealed.ID, "", nil, 404},
			{"another vendor does not see a sealed deposit", "GET", "/v1/deposits/" + sealed.ID, "globex", nil, 404},
			{"a builder does not see a sealed deposit", "GET", "/v1/deposits/" + sealed.ID, "builder", nil, 404},
			{"the vendor sees its sealed deposit", "GET", "/v1/deposits/" + sealed.ID, "acme", nil, 200},
			{"anonymous callers cannot read a sealed file", "GET", "/v1/deposits/" + sealed.ID + "/files/keys/unlock.pem", "", nil, 404},
			{"another vendor cannot read a sealed file", "GET", "/v1/deposits/" + sealed.ID + "/files/keys/unlock.pem", "globex", nil, 404},
			{"the vendor reads its sealed file", "GET", "/v1/deposits/" + sealed.ID + "/files/keys/unlock.pem", "acme", nil, 200},
			{"an admin reads a sealed file", "GET", "/v1/deposits/" + sealed.ID + "/files/keys/unlock.pem", "admin", nil, 200},
			{"the vendor cannot delete a sealed deposit", "DELETE", "/v1/deposits/" + sealed.ID, "acme", nil, 409},
			{"an admin cannot delete a sealed deposit", "DELETE", "/v1/deposits/" + sealed.ID, "admin", nil, 409},
			{"nobody can change a sealed file", "PUT", "/v1/deposits/" + sealed.ID + "/files/src/main.c", "acme", str("x"), 409},
			{"anybody reads a released file", "GET", "/v1/deposits/" + public.ID + "/files/src/main.c", "", nil, 200},
			{"a path with .. is refused", "GET", "/v1/deposits/" + public.ID + "/files/src/../src/main.c", "", nil, 400},
			{"anonymous callers cannot deposit", "POST", "/v1/deposits", "", str(string(create)), 401},
			{"another vendor cannot deposit for the product", "POST", "/v1/deposits", "globex", str(string(create)), 403},
			{"unknown fields are refused", "POST", "/v1/deposits", "acme", str(`{"product":"demo-cam","x":1}`), 400},
			{"the receipt key is public", "GET", "/v1/escrow/receipt-key", "", nil, 200},
			{"a vendor checks in for its org", "POST", "/v1/vendors/acme/checkin", "acme", nil, 200},
			{"a vendor cannot check in for another org", "POST", "/v1/vendors/acme/checkin", "globex", nil, 403},
			{"a vendor cannot start a scrub", "POST", "/v1/admin/scrub", "acme", nil, 403},
			{"an admin starts a scrub", "POST", "/v1/admin/scrub", "admin", nil, 200},
			{"an admin reads scrub results", "GET", "/v1/admin/scrub", "admin", nil, 200},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				a := call(t, srv, tt.method, tt.path, tt.token, tt.body)
				if a.status != tt.want {
					t.Fatalf("%s %s = %d %s, want %d", tt.method, tt.path, a.status, a.body, tt.want)
				}
				if a.status >= 400 && !strings.Contains(a.body, `"error"`) {
					t.Fatalf("error body = %s", a.body)
				}
			})
		}

		t.Run("a download carries its digest", func(t *testing.T) {
			a := call(t, srv, "GET", "/v1/deposits/"+public.ID+"/files/src/main.c", "", nil)
			if a.body != demoFiles["src/main.c"] || a.header.Get(SHA256Header) != hexSum([]byte(a.body)) {
				t.Fatalf("download = %q, digest header %q", a.body, a.header.Get(SHA256Header))
			}
		})
		t.Run("the public listing shows released deposits only", func(t *testing.T) {
			a := call(t, srv, "GET", "/v1/deposits", "", nil)
			if !strings.Contains(a.body, public.ID) || strings.Contains(a.body, sealed.ID) {
				t.Fatalf("listing = %s", a.body)
			}
		})
		t.Run("the Atom feed announces the release", func(t *testing.T) {
			a := call(t, srv, "GET", "/feeds/releases.atom", "", nil)
			if a.status != 200 || !strings.HasPrefix(a.header.Get("Content-Type"), "application/atom+xml") || !strings.Contains(a.body, public.ID) || strings.Contains(a.body, sealed.ID) {
				t.Fatalf("feed = %d %s", a.status, a.body)
			}
		})
		t.Run("an upload streams, is checked and commits over HTTP", func(t *testing.T) {
			a := call(t, srv, "POST", "/v1/deposits", "acme", strings.NewReader(string(create)))
			if a.status != 201 {
				t.Fatalf("create = %d %s", a.status, a.body)
			}
			var d Deposit
			json.Unmarshal([]byte(a.body), &d)
			before := e.blobCount(t)
			if a := call(t, srv, "PUT", "/v1/deposits/"+d.ID+"/files/a.txt", "acme", str("HELLO")); a.status != 400 {
				t.Fatalf("wrong content = %d %s", a.status, a.body)
			}
			if a := call(t, srv, "PUT", "/v1/deposits/"+d.ID+"/files/a.txt", "acme", str("hello world")); a.status != 413 {
				t.Fatalf("too long = %d %s", a.status, a.body)
			}
			if n := e.blobCount(t); n != before {
				t.Fatalf("refused uploads left %d blobs", n-before)
			}
			if a := call(t, srv, "POST", "/v1/deposits/"+d.ID+"/commit", "acme", nil); a.status != 409 {
				t.Fatalf("early commit = %d %s", a.status, a.body)
			}
			if a := call(t, srv, "PUT", "/v1/deposits/"+d.ID+"/files/a.txt", "acme", str("hello")); a.status != 200 {
				t.Fatalf("upload = %d %s", a.status, a.body)
			}
			if a := call(t, srv, "GET", "/v1/deposits/"+d.ID+"/upload", "acme", nil); !strings.Contains(a.body, `"done":true`) {
				t.Fatalf("upload status = %s", a.body)
			}
			if a := call(t, srv, "POST", "/v1/deposits/"+d.ID+"/commit", "acme", nil); a.status != 200 || !strings.Contains(a.body, `"signature"`) {
				t.Fatalf("commit = %d %s", a.status, a.body)
			}
		})
		t.Run("a released copy the store lost is refused with a clear error", func(t *testing.T) {
			lost := blob.Digest("sha256:" + hexSum([]byte(demoFiles["keys/unlock.pem"])))
			if err := e.blobs.Delete(context.Background(), lost); err != nil {
				t.Fatal(err)
			}
			a := call(t, srv, "GET", "/v1/deposits/"+public.ID+"/files/keys/unlock.pem", "", nil)
			if a.status != 409 || !strings.Contains(a.body, "missing") {
				t.Fatalf("read of a lost copy = %d %s", a.status, a.body)
			}
			if a := call(t, srv, "GET", "/v1/deposits/"+sealed.ID+"/files/keys/unlock.pem", "acme", nil); a.status != 200 || a.body != demoFiles["keys/unlock.pem"] {
				t.Fatalf("the sealed deposit's own copy = %d %q", a.status, a.body)
			}
		})
		if e.disk != nil {
			t.Run("a corrupt released copy is refused once the scrub finds it", func(t *testing.T) {
				damage(t, e, blob.Digest("sha256:"+hexSum([]byte(demoFiles["docs/board.pdf"]))))
				// Sent zero-copy as stored, the damaged bytes do not hash
				// to the digest the answer names, which the client checks.
				a := call(t, srv, "GET", "/v1/deposits/"+public.ID+"/files/docs/board.pdf", "", nil)
				if a.status == 200 && hexSum([]byte(a.body)) == a.header.Get(SHA256Header) {
					t.Fatal("served corrupt content under a digest it matches")
				}
				if _, err := e.svc.Scrubber("r1").Run(context.Background(), "test"); err != nil {
					t.Fatal(err)
				}
				a = call(t, srv, "GET", "/v1/deposits/"+public.ID+"/files/docs/board.pdf", "", nil)
				if a.status != 409 || !strings.Contains(a.body, "not served") {
					t.Fatalf("read after the scrub = %d %s", a.status, a.body)
				}
			})
		}
	})
}

// generated is n bytes of reproducible pseudo-random data, never held in
// memory.
func generated(n int64) io.Reader {
	return io.LimitReader(rand.NewChaCha8([32]byte{1, 2, 3}), n)
}

func vmHWM(b *testing.B) float64 {
	b.Helper()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024
		}
	}
	b.Fatal("no VmHWM in /proc/self/status")
	return 0
}

// processCPU is the CPU time (user and system) this process has used, in
// seconds: the client and the server of the benchmark, not MinIO or
// PostgreSQL.
func processCPU(b *testing.B) float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// benchFile writes size bytes of the benchmark's generator into a file
// made once for the whole benchmark and removed after it: under /dev/shm
// when it exists and has room (so reading the file costs neither the
// client nor the baseline a disk), else in the temp directory. It returns
// the file's path and its sha256 (hex).
func benchFile(b *testing.B, size int64) (string, string) {
	b.Helper()
	dir := os.TempDir()
	var fs syscall.Statfs_t
	if err := syscall.Statfs("/dev/shm", &fs); err == nil && int64(fs.Bavail)*int64(fs.Bsize) > size+(256<<20) {
		dir = "/dev/shm"
	}
	tmp, err := os.MkdirTemp(dir, "afterlife-bench-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(tmp) })
	path := filepath.Join(tmp, "sdk.bin")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	h := sha256.New()
	_, err = io.CopyBuffer(io.MultiWriter(f, h), generated(size), make([]byte, 1<<20))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		b.Fatalf("write %s: %v", path, err)
	}
	return path, hex.EncodeToString(h.Sum(nil))
}

// BenchmarkDepositUpload uploads one large file (1 GiB; set
// AFTERLIFE_BENCH_BYTES to change) from a file, as `afterlife vendor
// deposit` does, through the HTTP upload into a sealed deposit, and
// reports throughput and peak memory next to `openssl dgst -sha256 FILE`
// over the same file (it uses the CPU's SHA instructions, as Go does),
// measured in the same run. On S3 it also reports a plain minio-go
// PutObject of the same file into the same MinIO.
func BenchmarkDepositUpload(b *testing.B) {
	size := int64(1 << 30)
	if s := os.Getenv("AFTERLIFE_BENCH_BYTES"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			b.Fatal(err)
		}
		size = n
	}
	file, sum := benchFile(b, size)
	open := func(b *testing.B) *os.File {
		f, err := os.Open(file)
		if err != nil {
			b.Fatal(err)
		}
		return f
	}

	// The baseline: openssl hashing the same file.
	start := time.Now()
	openssl := exec.Command("openssl", "dgst", "-sha256", file)
	out, err := openssl.Output()
	if err != nil {
		b.Fatalf("openssl dgst -sha256: %v (openssl is needed)", err)
	}
	if !strings.Contains(string(out), sum) {
		b.Fatalf("openssl says %s, Go says %s", out, sum)
	}
	baseline := float64(size) / 1e6 / time.Since(start).Seconds()
	opensslCPU := (openssl.ProcessState.UserTime() + openssl.ProcessState.SystemTime()).Seconds()

	stores := []struct {
		name string
		env  func(b *testing.B) *env
	}{
		{"sqlite+disk", func(b *testing.B) *env {
			store, err := fsstore.New(filepath.Join(b.TempDir(), "blobs"))
			if err != nil {
				b.Fatal(err)
			}
			return newEnv(b, "sqlite:"+filepath.Join(b.TempDir(), "a.db"), store)
		}},
		{"postgres+minio", func(b *testing.B) *env {
			m := testenv.MinIO(b)
			ctx := context.Background()
			s, err := newS3(ctx, m, m.NewBucket(b, false), b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			return newEnv(b, testenv.Postgres(b), s)
		}},
	}
	for _, st := range stores {
		b.Run(st.name, func(b *testing.B) {
			e := st.env(b)
			srv := serve(b, e.svc)
			ctx := context.Background()
			b.SetBytes(size)
			hwmBefore := vmHWM(b)
			cpuBefore := processCPU(b)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				d, err := e.svc.Create(ctx, acme, CreateRequest{Product: "demo-cam", Policy: "on=2099-01-01",
					Manifest: []manifest.Entry{{Path: "toolchain/sdk.bin", Size: size, SHA256: sum, Kind: manifest.Toolchain}}})
				if err != nil {
					b.Fatal(err)
				}
				f := open(b)
				req, _ := http.NewRequest("PUT", srv.URL+"/v1/deposits/"+d.ID+"/files/toolchain/sdk.bin", f)
				req.ContentLength = size
				req.Header.Set("Authorization", "Bearer acme")
				resp, err := http.DefaultClient.Do(req)
				f.Close()
				if err != nil {
					b.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Fatalf("upload = %d %s", resp.StatusCode, body)
				}
				if _, err := e.svc.Commit(ctx, acme, d.ID); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			// CPU time does not depend on what else holds the cores: on
			// two free cores the deposit can reach at most
			// 2 × openssl-cpu-s / cpu-s of openssl's rate.
			b.ReportMetric((processCPU(b)-cpuBefore)/float64(b.N), "cpu-s")
			b.ReportMetric(opensslCPU, "openssl-cpu-s")
			hwmAfter := vmHWM(b)
			b.ReportMetric(baseline, "openssl-MB/s")
			b.ReportMetric(hwmAfter, "peak-RSS-MiB")
			b.ReportMetric(hwmAfter-hwmBefore, "RSS-growth-MiB")
			fmt.Fprintf(os.Stderr, "%s: %d MiB upload; openssl dgst -sha256 %.0f MB/s; peak RSS %.0f MiB (grew %.0f MiB)\n",
				st.name, size>>20, baseline, hwmAfter, hwmAfter-hwmBefore)
			// On S3, the store's own ceiling too: a plain PutObject of the
			// same bytes into the same MinIO (after the peak RSS is read).
			if s3, ok := e.blobs.(*s3store.Store); ok {
				f := open(b)
				took, err := s3.UploadCeiling(ctx, f, size)
				f.Close()
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(size)/1e6/took.Seconds(), "minio-put-MB/s")
			}
		})
	}
}

func TestADownloadCutShortResumesWithRange(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		srv := serve(t, e.svc)
		big := strings.Repeat("0123456789abcdef", 20<<10) // 320 KiB: several reads
		files := map[string]string{"fw/image.bin": big}
		sealed, _ := e.deposit(t, acme, "demo-cam", "on=2099-01-01", files)
		public, _ := e.deposit(t, acme, "other-cam", "immediate", files)
		etag := `"` + hexSum([]byte(big)) + `"`
		get := func(path, token string, header ...string) answer {
			req, err := http.NewRequest("GET", srv.URL+path, nil)
			if err != nil {
				t.Fatal(err)
			}
			if token != "" {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			for i := 0; i+1 < len(header); i += 2 {
				req.Header.Set(header[i], header[i+1])
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return answer{resp.StatusCode, resp.Header, string(b)}
		}
		for _, tc := range []struct {
			name, path, token string
		}{
			{"a released file", "/v1/deposits/" + public.ID + "/files/fw/image.bin", ""},
			{"a sealed file, decrypted for its vendor", "/v1/deposits/" + sealed.ID + "/files/fw/image.bin", "acme"},
		} {
			t.Run(tc.name+" resumes from where the first try stopped", func(t *testing.T) {
				whole := get(tc.path, tc.token)
				if whole.status != 200 || whole.body != big || whole.header.Get("ETag") != etag || whole.header.Get("Accept-Ranges") != "bytes" {
					t.Fatalf("whole download: %d, %d bytes, ETag %q, Accept-Ranges %q", whole.status, len(whole.body), whole.header.Get("ETag"), whole.header.Get("Accept-Ranges"))
				}
				have := 100_003
				rest := get(tc.path, tc.token, "Range", fmt.Sprintf("bytes=%d-", have), "If-Range", etag)
				if rest.status != 206 || big[:have]+rest.body != big {
					t.Fatalf("resumed download: %d, %d bytes; want 206 and the rest of the file", rest.status, len(rest.body))
				}
				if want := fmt.Sprintf("bytes %d-%d/%d", have, len(big)-1, len(big)); rest.header.Get("Content-Range") != want {
					t.Errorf("Content-Range %q; want %q", rest.header.Get("Content-Range"), want)
				}
				mid := get(tc.path, tc.token, "Range", "bytes=16-31")
				if mid.status != 206 || mid.body != big[16:32] {
					t.Errorf("a middle range: %d %q; want 206 %q", mid.status, mid.body, big[16:32])
				}
			})
			t.Run(tc.name+" is sent whole when it changed since the first try", func(t *testing.T) {
				a := get(tc.path, tc.token, "Range", "bytes=100-", "If-Range", `"another-digest"`)
				if a.status != 200 || a.body != big {
					t.Fatalf("%d, %d bytes; want 200 and the whole file", a.status, len(a.body))
				}
			})
			t.Run(tc.name+" answers 416 past its end", func(t *testing.T) {
				if a := get(tc.path, tc.token, "Range", fmt.Sprintf("bytes=%d-", len(big)+10)); a.status != 416 {
					t.Fatalf("%d; want 416", a.status)
				}
			})
		}
		t.Run("a range leaves a sealed file hidden from others", func(t *testing.T) {
			if a := get("/v1/deposits/"+sealed.ID+"/files/fw/image.bin", "", "Range", "bytes=0-"); a.status != 404 {
				t.Fatalf("anonymous range read of a sealed file: %d", a.status)
			}
		})
	})
}
