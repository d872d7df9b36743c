package clustertest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/testenv"
	"github.com/afterlife-oss/afterlife/registry/translog/verify"
)

// TestTheLogWriterKilledMidAppendLosesNothingAndNoEventIsLoggedTwice runs
// two replicas on one PostgreSQL while products are registered through
// both, and SIGKILLs whichever replica holds the log's writer lease, three
// times, while it appends; the other takes the lease over each time. Every checkpoint served before a kill must stay
// a prefix of the log (consistency proof), every event must end up logged
// exactly once, and the log must verify from end to end.
func TestTheLogWriterKilledMidAppendLosesNothingAndNoEventIsLoggedTwice(t *testing.T) {
	dsn := testenv.Postgres(t)
	keys := filepath.Join(t.TempDir(), "keys")
	var replicas []*testenv.Server
	for i := 1; i <= 2; i++ {
		replicas = append(replicas, testenv.Serve(t, testenv.ServeOptions{Args: []string{
			"--database", dsn, "--keys", keys, "--local-builders", "0", "--scrub-every", "0",
			"--replica-id", fmt.Sprintf("replica-%d", i), "--translog-every", "50ms", "--translog-quorum", "0",
		}}))
	}
	t.Cleanup(func() {
		if t.Failed() {
			for i, r := range replicas {
				t.Logf("--- replica-%d log tail ---\n%s", i+1, r.LogTail())
			}
		}
	})
	admin := replicas[0].Token
	call := func(r *testenv.Server, method, path, token string, in, out any) int {
		var body io.Reader
		if in != nil {
			b, _ := json.Marshal(in)
			body = bytes.NewReader(b)
		}
		req, _ := http.NewRequest(method, r.URL+path, body)
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0
		}
		defer resp.Body.Close()
		if out != nil && resp.StatusCode < 300 {
			_ = json.NewDecoder(resp.Body).Decode(out)
		}
		return resp.StatusCode
	}
	if code := call(replicas[0], "POST", "/v1/admin/orgs", admin, map[string]string{"id": "acme", "kind": "vendor"}, nil); code != 201 {
		t.Fatalf("create org: %d", code)
	}
	var tok struct {
		Token string `json:"token"`
	}
	if code := call(replicas[0], "POST", "/v1/admin/tokens", admin, map[string]string{"name": "acme", "role": "vendor", "org": "acme"}, &tok); code != 201 {
		t.Fatalf("create token: %d", code)
	}
	d, err := db.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()

	// Vendors register products through both replicas, as fast as they
	// answer, a budget of them a round, until the kills are over.
	var registered atomic.Int64
	stop := make(chan struct{})
	budget := make(chan struct{}, 2000)
	spend := func(n int) {
		for range n {
			budget <- struct{}{}
		}
	}
	var wg sync.WaitGroup
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				case <-budget:
				}
				id := fmt.Sprintf("cam-%d-%d", w, i)
				for _, r := range []*testenv.Server{replicas[w], replicas[1-w]} {
					if code := call(r, "POST", "/v1/products", tok.Token, map[string]any{"id": id, "vendor": "acme", "model": "Cam " + id}, nil); code == 201 {
						registered.Add(1)
						break
					}
				}
			}
		}()
	}

	var info struct {
		Origin      string `json:"origin"`
		VerifierKey string `json:"verifier_key"`
	}
	if code := call(replicas[0], "GET", "/v1/log", "", nil, &info); code != 200 {
		t.Fatalf("log info: %d", code)
	}
	pol := verify.Policy{Origin: info.Origin, LogKey: info.VerifierKey}
	checkpoint := func(r *testenv.Server) (verify.Checkpoint, bool) {
		resp, err := http.Get(r.URL + "/log/checkpoint")
		if err != nil {
			return verify.Checkpoint{}, false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			return verify.Checkpoint{}, false
		}
		cp, err := pol.Checkpoint(b)
		if err != nil {
			t.Fatalf("served checkpoint does not verify: %v", err)
		}
		return cp, true
	}
	writer := func() int {
		var holder string
		err := d.QueryRowContext(context.Background(), `SELECT holder FROM leases WHERE name = 'translog-writer'`).Scan(&holder)
		if err != nil {
			return -1
		}
		for i := range replicas {
			if holder == fmt.Sprintf("replica-%d", i+1) {
				return i
			}
		}
		return -1
	}

	var acknowledged []verify.Checkpoint
	var size int64 // the log's size when the round began
	for round := 0; round < 3; round++ {
		spend(400)
		var w int
		var before verify.Checkpoint
		// Kill while this round's registrations are being appended.
		testenv.Eventually(t, 60*time.Second, func() error {
			w = writer()
			if w < 0 {
				return fmt.Errorf("nobody holds the writer lease")
			}
			cp, ok := checkpoint(replicas[1-w])
			if !ok || cp.Size < size+20 {
				return fmt.Errorf("the log has not grown by 20 since the round began")
			}
			before = cp
			return nil
		})
		acknowledged = append(acknowledged, before)
		t.Logf("round %d: SIGKILL replica-%d, the writer, at log size %d with %d products registered", round+1, w+1, before.Size, registered.Load())
		replicas[w].Stop(syscall.SIGKILL)
		// The other replica takes the writer lease once it runs out,
		// and goes on from the cursors the killed one committed.
		testenv.Eventually(t, 60*time.Second, func() error {
			if now := writer(); now != 1-w {
				return fmt.Errorf("replica-%d holds the writer lease", now+1)
			}
			return nil
		})
		replicas[w].Restart()
		testenv.Eventually(t, 60*time.Second, func() error {
			cp, ok := checkpoint(replicas[1-w])
			if !ok || cp.Size < registered.Load() {
				return fmt.Errorf("the round's registrations are not all logged yet")
			}
			size = cp.Size
			return nil
		})
	}
	close(stop)
	wg.Wait()

	// Every status event (a registration each) is logged, once.
	var events int64
	if err := d.QueryRowContext(context.Background(), `SELECT COUNT(*) FROM product_events`).Scan(&events); err != nil {
		t.Fatal(err)
	}
	var final verify.Checkpoint
	testenv.Eventually(t, 60*time.Second, func() error {
		cp, ok := checkpoint(replicas[0])
		if !ok || cp.Size < events {
			return fmt.Errorf("log size %d, %d events to log", cp.Size, events)
		}
		final = cp
		return nil
	})
	if final.Size != events {
		t.Fatalf("the log holds %d entries for %d events", final.Size, events)
	}
	var dup int
	if err := d.QueryRowContext(context.Background(), `SELECT COUNT(*) FROM (SELECT subject FROM translog_entries
		WHERE kind = 'product.registered' GROUP BY subject HAVING COUNT(*) > 1) x`).Scan(&dup); err != nil {
		t.Fatal(err)
	}
	if dup != 0 {
		t.Fatalf("%d products were logged as registered more than once", dup)
	}
	for _, cp := range acknowledged {
		resp, err := http.Get(fmt.Sprintf("%s/v1/log/consistency?old=%d&size=%d", replicas[1].URL, cp.Size, final.Size))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		p, err := verify.ParseProofLines(b)
		if err != nil {
			t.Fatal(err)
		}
		if err := verify.Consistency(cp, final, p); err != nil {
			t.Fatalf("the checkpoint of size %d served before a kill is not a prefix of the final log: %v", cp.Size, err)
		}
	}
	t.Logf("%d products registered, %d entries, checkpoints before the kills at %v all consistent with the final one", registered.Load(), final.Size, sizes(acknowledged))
}

func sizes(cps []verify.Checkpoint) []int64 {
	var out []int64
	for _, c := range cps {
		out = append(out, c.Size)
	}
	return out
}
