package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/afterlife-oss/afterlife/internal/testenv"
)

// TestAVendorUploadCutAtHalfResumesWithinTheFile deposits a 1 GiB file
// through a proxy that cuts every connection once half of it has passed,
// while the vendor presses Ctrl-C. The command says to run it again; the
// server kept what arrived; the re-run sends only the rest (counted by the
// proxy, so the server's intake, not the client's word). Then a server
// killed in the middle of a 256 MiB file keeps every finished piece across
// its restart, and that file, sealed from pieces of two runs, reads back
// whole. On SQLite + disk and PostgreSQL + MinIO.
func TestAVendorUploadCutAtHalfResumesWithinTheFile(t *testing.T) {
	const size = 1 << 30
	src, _ := sparseDeposit(t, size)
	crashSrc, crashWant := sparseDeposit(t, 256<<20)

	for name, opts := range backends(t) {
		t.Run(name, func(t *testing.T) {
			opts.Args = append(opts.Args, "--local-builders", "0")
			srv := testenv.Serve(t, opts)
			vendorToken := newVendor(t, srv, "acme")
			afterlife(t, true, "vendor", "product", "--id", "acme-cam", "--vendor", "acme", "--model", "Cam", "--device-ids", "usb:acme:cam",
				"--server", srv.URL, "--token", vendorToken)

			px := startCutProxy(t, srv.Addr)
			work := t.TempDir()
			state := filepath.Join(work, "state.json")
			args := []string{"vendor", "deposit", "--yes", "--product", "acme-cam", "--policy", "dead-man=30d,7d",
				"--state", state, "--receipt", filepath.Join(work, "receipt.json"), "--server", px.url, "--token", vendorToken, src + "/"}

			// The first run: the proxy cuts everything at half the file and
			// the vendor interrupts the command.
			cmd := exec.Command(testenv.Binary(t), args...)
			var out1, err1 bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out1, &err1
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			// Set after Start (the command hashes the file for seconds
			// before it sends), so the proxy's goroutine sees the process.
			px.cutAfter(size/2, func() { cmd.Process.Signal(os.Interrupt) })
			if err := cmd.Wait(); err == nil {
				t.Fatalf("the interrupted run succeeded:\n%s\n%s", out1.String(), err1.String())
			}
			if !strings.Contains(err1.String(), "run the same command again to resume") {
				t.Fatalf("the interrupted run does not say how to resume:\n%s", err1.String())
			}
			var st struct {
				Deposit string `json:"deposit"`
			}
			b, err := os.ReadFile(state)
			if err != nil || json.Unmarshal(b, &st) != nil || st.Deposit == "" {
				t.Fatalf("no resume state after the interruption: %s, %v", b, err)
			}
			var have int64
			testenv.Eventually(t, time.Minute, func() error {
				var err error
				if have, err = held(t, srv, vendorToken, st.Deposit); err != nil {
					return err
				}
				if have < size*45/100 {
					return fmt.Errorf("the server holds %d bytes (%d%%)", have, have*100/size)
				}
				return nil
			})
			t.Logf("after the cut the server holds %d of %d bytes (%.1f%%)", have, size, float64(have)*100/size)

			// The re-run sends only the rest.
			px.passAll()
			out2, err2 := afterlife(t, true, args...)
			m := regexp.MustCompile(`deposit (\S+) committed`).FindStringSubmatch(out2)
			if m == nil || m[1] != st.Deposit {
				t.Fatalf("the re-run did not commit deposit %s:\n%s\n%s", st.Deposit, out2, err2)
			}
			if !strings.Contains(err2, "resumed an earlier upload") {
				t.Errorf("the re-run does not say it resumed:\n%s", err2)
			}
			second := px.upstream()
			t.Logf("the re-run sent the server %d bytes (%.1f%% of the file)", second, float64(second)*100/size)
			if limit := int64(size)*55/100 + 1<<20; second > limit {
				t.Fatalf("the re-run sent %d bytes, more than 55%% of the file plus 1 MiB (%d): it did not resume within the file", second, limit)
			}

			// The server checked the whole file's sha256 before sealing it;
			// reading sealed files back is done on the smaller one below.

			t.Run("a server killed mid-file keeps every finished piece", func(t *testing.T) {
				const size = 256 << 20
				state := filepath.Join(work, "crash-state.json")
				args := []string{"vendor", "deposit", "--yes", "--product", "acme-cam", "--policy", "dead-man=30d,7d",
					"--state", state, "--receipt", filepath.Join(work, "crash-receipt.json"), "--server", px.url, "--token", vendorToken, crashSrc + "/"}
				cmd := exec.Command(testenv.Binary(t), args...)
				var out, errb bytes.Buffer
				cmd.Stdout, cmd.Stderr = &out, &errb
				// At 200 MiB through the proxy the server has read at least
				// 164 MiB (the socket buffers hold at most 36 MiB), so the
				// pieces of 64 MiB up to 128 MiB have arrived. The proxy
				// stalls there with the connection open: the server stores
				// those two (the second may still be going to the blob store
				// while the third arrives) and waits in the third, which is
				// in flight when the server is killed.
				px.passAll()
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				killed := make(chan error, 1)
				px.stallAfter(200<<20, func() {
					err := testenv.Poll(context.Background(), 2*time.Minute, func() error {
						var st struct {
							Deposit string `json:"deposit"`
						}
						if b, err := os.ReadFile(state); err != nil || json.Unmarshal(b, &st) != nil || st.Deposit == "" {
							return fmt.Errorf("no resume state yet: %s, %v", b, err)
						}
						have, err := heldNow(srv.URL, vendorToken, st.Deposit)
						if err == nil && have < 128<<20 {
							err = fmt.Errorf("the server holds %d bytes so far", have)
						}
						return err
					})
					srv.Stop(syscall.SIGKILL)
					cmd.Process.Signal(os.Interrupt)
					killed <- err
				})
				if err := cmd.Wait(); err == nil {
					t.Fatalf("the run whose server was killed succeeded:\n%s\n%s", out.String(), errb.String())
				}
				if err := <-killed; err != nil {
					t.Fatalf("the two pieces that arrived were never stored: %v", err)
				}
				srv.Restart()
				var st struct {
					Deposit string `json:"deposit"`
				}
				b, err := os.ReadFile(state)
				if err != nil || json.Unmarshal(b, &st) != nil || st.Deposit == "" {
					t.Fatalf("no resume state after the crash: %s, %v", b, err)
				}
				have, err := held(t, srv, vendorToken, st.Deposit)
				if err != nil {
					t.Fatal(err)
				}
				t.Logf("after the crash the restarted server holds %d of %d bytes", have, size)
				if have < 128<<20 {
					t.Fatalf("the restarted server holds %d bytes; the two finished pieces (%d bytes) were lost", have, 128<<20)
				}
				px.passAll()
				afterlife(t, true, args...)
				if sent := px.upstream(); sent > size-have+1<<20 {
					t.Fatalf("the re-run sent %d bytes; the server held %d of %d", sent, have, size)
				}
				readBack(t, srv, vendorToken, st.Deposit, size, crashWant)
			})
		})
	}
}

// sparseDeposit writes a deposit directory holding one sparse file of size
// bytes with random blocks spread over it (so a misplaced byte range
// changes the digest), and returns the directory and the file's sha256.
func sparseDeposit(t *testing.T, size int64) (string, string) {
	t.Helper()
	src := filepath.Join(t.TempDir(), "sunset")
	big := filepath.Join(src, "toolchain", "sdk.img")
	if err := os.MkdirAll(filepath.Dir(big), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	block := make([]byte, 64<<10)
	for _, at := range []int64{0, size / 4, size/2 - 1000, size / 2, 3 * size / 4, size - int64(len(block))} {
		rand.Read(block)
		if _, err := f.WriteAt(block, at); err != nil {
			t.Fatal(err)
		}
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, size)); err != nil {
		t.Fatal(err)
	}
	return src, hex.EncodeToString(h.Sum(nil))
}

// readBack downloads a deposit's sdk.img as its vendor and checks it.
func readBack(t *testing.T, srv *testenv.Server, token, deposit string, size int64, want string) {
	t.Helper()
	req, _ := http.NewRequest("GET", srv.URL+"/v1/deposits/"+deposit+"/files/toolchain/sdk.img", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	if resp.StatusCode != 200 || err != nil || n != size || hex.EncodeToString(h.Sum(nil)) != want {
		t.Fatalf("read back: %s, %d bytes, %v, sha256 %x; want %s", resp.Status, n, err, h.Sum(nil), want)
	}
}

// held is how many bytes of its one file the server holds for a deposit.
func held(t *testing.T, srv *testenv.Server, token, deposit string) (int64, error) {
	return heldNow(srv.URL, token, deposit)
}

// heldNow is held for a goroutine other than the test's.
func heldNow(url, token, deposit string) (int64, error) {
	var up struct {
		Files []struct {
			Path     string `json:"path"`
			Received int64  `json:"received"`
		} `json:"files"`
	}
	req, err := http.NewRequest("GET", url+"/v1/deposits/"+deposit+"/upload", nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&up); err != nil || resp.StatusCode != 200 || len(up.Files) != 1 {
		return 0, fmt.Errorf("upload status: %d %+v %v", resp.StatusCode, up, err)
	}
	return up.Files[0].Received, nil
}

// cutProxy forwards TCP to a server and counts the bytes sent to it; it
// can cut every connection once a number of bytes has passed, and refuse
// new ones until told to pass again.
type cutProxy struct {
	url string

	mu      sync.Mutex
	sent    int64
	limit   int64 // < 0: none
	onCut   func()
	onStall func()
	refused bool
	conns   map[net.Conn]bool
}

func startCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{url: "http://" + ln.Addr().String(), limit: -1, conns: map[net.Conn]bool{}}
	t.Cleanup(func() { ln.Close(); p.closeAll() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c, target)
		}
	}()
	return p
}

// upstream is how many bytes went to the server since passAll.
func (p *cutProxy) upstream() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sent
}

// cutAfter cuts when n more bytes have gone to the server, then calls fn.
func (p *cutProxy) cutAfter(n int64, fn func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.limit, p.onCut = p.sent+n, fn
}

// stallAfter stops forwarding when n more bytes have gone to the server,
// leaving every connection open, and calls fn (which may kill the
// server); then it cuts.
func (p *cutProxy) stallAfter(n int64, fn func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.limit, p.onStall = p.sent+n, fn
}

// passAll forwards everything again and starts counting from zero.
func (p *cutProxy) passAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sent, p.limit, p.refused = 0, -1, false
}

func (p *cutProxy) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
	}
}

func (p *cutProxy) serve(c net.Conn, target string) {
	p.mu.Lock()
	if p.refused {
		p.mu.Unlock()
		c.Close()
		return
	}
	p.mu.Unlock()
	up, err := net.Dial("tcp", target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	p.conns[c], p.conns[up] = true, true
	p.mu.Unlock()
	go func() {
		io.Copy(c, up)
		c.Close()
	}()
	buf := make([]byte, 64<<10)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			p.mu.Lock()
			k := int64(n)
			cut := p.limit >= 0 && p.sent+k >= p.limit
			if cut {
				k = p.limit - p.sent
			}
			p.sent += k
			p.mu.Unlock()
			if _, werr := up.Write(buf[:k]); werr != nil {
				break
			}
			if cut {
				p.mu.Lock()
				stall := p.onStall
				p.onStall = nil
				p.mu.Unlock()
				if stall != nil {
					stall()
				}
				p.cut()
				break
			}
		}
		if err != nil {
			break
		}
	}
	up.Close()
	c.Close()
}

// cut closes every connection, refuses new ones, and calls onCut once.
func (p *cutProxy) cut() {
	p.mu.Lock()
	fn := p.onCut
	p.onCut, p.refused, p.limit = nil, true, -1
	conns := p.conns
	p.conns = map[net.Conn]bool{}
	p.mu.Unlock()
	for c := range conns {
		c.Close()
	}
	if fn != nil {
		fn()
	}
}
