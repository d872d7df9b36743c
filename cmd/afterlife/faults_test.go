package main

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/afterlife-oss/afterlife/internal/testenv"
)

func status(url string) int {
	resp, err := http.Get(url)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// answers is a condition for testenv.Eventually: url answers code.
func answers(url string, code int) func() error {
	return func() error {
		if got := status(url); got != code {
			return fmt.Errorf("%s answers %d, want %d", url, got, code)
		}
		return nil
	}
}

func TestKillDuringDepositLeavesNothingAndTheUploadResumes(t *testing.T) {
	srv := testenv.Serve(t, testenv.ServeOptions{Args: []string{"--local-builders", "0"}})
	afterlife(t, true, "admin", "org", "create", "acme", "--server", srv.URL, "--token", srv.Token)
	vendor, _ := afterlife(t, true, "admin", "token", "create", "--name", "acme", "--role", "vendor", "--org", "acme", "--server", srv.URL, "--token", srv.Token)
	vendor = strings.TrimSpace(vendor)
	afterlife(t, true, "vendor", "product", "--id", "acme-cam", "--vendor", "acme", "--model", "Cam", "--device-ids", "usb:1d6b:0104", "--server", srv.URL, "--token", vendor)

	dir := t.TempDir()
	pkg := filepath.Join(dir, "sunset")
	os.MkdirAll(pkg, 0o755)
	os.WriteFile(filepath.Join(pkg, "a-spec.pdf"), []byte("%PDF small spec"), 0o644)
	big := make([]byte, 256<<20)
	rand.Read(big)
	os.WriteFile(filepath.Join(pkg, "b-sources.tar"), big, 0o644)
	state := filepath.Join(dir, "deposit.state")
	args := []string{"vendor", "deposit", "--rights", "**=public", "--product", "acme-cam", "--policy", "on=2099-01-01", "--state", state,
		"--receipt", filepath.Join(dir, "receipt.json"), "--server", srv.URL, "--token", vendor, pkg}

	// Start the upload, and kill the server while the big file streams.
	cmd := exec.Command(testenv.Binary(t), args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, time.Minute, func() error {
		if entries, err := os.ReadDir(filepath.Join(srv.Data, "blobs", "tmp")); len(entries) == 0 {
			return fmt.Errorf("the upload has not started streaming (%v)", err)
		}
		return nil
	})
	srv.Stop(syscall.SIGKILL)
	cmd.Process.Kill()
	cmd.Wait()

	srv.Restart()
	var list struct {
		Deposits []map[string]any `json:"deposits"`
	}
	apiJSON(t, "GET", srv.URL+"/v1/deposits?product=acme-cam", vendor, nil, &list)
	if len(list.Deposits) != 0 {
		t.Fatalf("a deposit is visible after the server died mid-upload: %v", list.Deposits)
	}

	// Running the same command again resumes and commits.
	stdout, stderr := afterlife(t, true, args...)
	if !strings.Contains(stdout, "committed") || !strings.Contains(stderr, "resumed") {
		t.Fatalf("the second run did not resume and commit:\n%s\n%s", stdout, stderr)
	}
	apiJSON(t, "GET", srv.URL+"/v1/deposits?product=acme-cam", vendor, nil, &list)
	if len(list.Deposits) != 1 || list.Deposits[0]["state"] != "sealed" {
		t.Fatalf("deposits after the resume: %v; want one sealed", list.Deposits)
	}
	// The sealed file reads back intact for its vendor.
	id := list.Deposits[0]["id"].(string)
	var dep struct {
		Manifest []struct{ Path string } `json:"manifest"`
	}
	apiJSON(t, "GET", srv.URL+"/v1/deposits/"+id, vendor, nil, &dep)
	bigPath := ""
	for _, e := range dep.Manifest {
		if strings.HasSuffix(e.Path, "b-sources.tar") {
			bigPath = e.Path
		}
	}
	if bigPath == "" {
		t.Fatalf("the manifest %v has no b-sources.tar", dep.Manifest)
	}
	req, _ := http.NewRequest("GET", srv.URL+"/v1/deposits/"+id+"/files/"+bigPath, nil)
	req.Header.Set("Authorization", "Bearer "+vendor)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Equal(got, big) {
		t.Fatalf("reading the sealed file back: %d, %d bytes (want %d, identical)", resp.StatusCode, len(got), len(big))
	}
	// Another caller cannot see it.
	if code := status(srv.URL + "/v1/deposits/" + id + "/files/" + bigPath); code != 404 && code != 403 {
		t.Fatalf("anonymous read of a sealed file: %d", code)
	}
}

func TestReadinessFollowsTheBackendsAndRecovers(t *testing.T) {
	pg := testenv.StartPostgresCluster(t)
	mc := testenv.StartMinIO(t)
	bucket := mc.NewBucket(t, false)
	srv := testenv.Serve(t, testenv.ServeOptions{
		Args: []string{"--database", pg.CreateDB(t), "--blobs", mc.URL(bucket), "--local-builders", "0"},
		Env:  []string{"AWS_ACCESS_KEY_ID=" + mc.AccessKey, "AWS_SECRET_ACCESS_KEY=" + mc.SecretKey},
	})
	type report struct {
		Status string `json:"status"`
		Checks map[string]struct {
			OK    bool   `json:"ok"`
			Error string `json:"error"`
		} `json:"checks"`
	}
	readyz := func() (int, report) {
		var r report
		resp, err := http.Get(srv.URL + "/readyz")
		if err != nil {
			return 0, r
		}
		defer resp.Body.Close()
		json.NewDecoder(resp.Body).Decode(&r)
		return resp.StatusCode, r
	}
	for _, fault := range []struct {
		name        string
		stop, start func() error
		check       string
		// whether the replica stays ready: it still serves update checks
		// and TUF metadata without the blob store.
		ready  bool
		status string
	}{
		{"the blob store", mc.Stop, mc.Start, "blobs", true, "degraded"},
		{"the database", pg.Stop, pg.Start, "database", false, "unavailable"},
	} {
		t.Run("when "+fault.name+" goes away", func(t *testing.T) {
			if err := fault.stop(); err != nil {
				t.Fatal(err)
			}
			var last report
			var code int
			testenv.Eventually(t, 30*time.Second, func() error {
				code, last = readyz()
				if code == 0 || last.Checks[fault.check].OK {
					return fmt.Errorf("readyz answered %d and reports %s ok (%+v)", code, fault.check, last.Checks)
				}
				return nil
			})
			if want := map[bool]int{true: 200, false: 503}[fault.ready]; code != want || last.Status != fault.status {
				t.Errorf("readyz answered %d %q with %s away; want %d %q (%+v)", code, last.Status, fault.name, want, fault.status, last.Checks)
			}
			for name, c := range last.Checks {
				if name != fault.check && !c.OK {
					t.Errorf("readyz reports %s failing too: %s", name, c.Error)
				}
			}
			if fault.ready {
				if code := status(srv.URL + "/v1/devices/updates?id=usb:1d6b:0104&version=1.0.0"); code != 204 {
					t.Errorf("an update check answered %d with %s away; want 204", code, fault.name)
				}
				if code := status(srv.URL + "/tuf/timestamp.json"); code != 200 {
					t.Errorf("TUF timestamp.json answered %d with %s away; want 200", code, fault.name)
				}
			}
			if status(srv.URL+"/healthz") != 200 {
				t.Fatal("liveness failed while a backend was down; the process should stay up")
			}
			if err := fault.start(); err != nil {
				t.Fatal(err)
			}
			testenv.Eventually(t, 60*time.Second, func() error { // recovering by itself
				code, last = readyz()
				if code != http.StatusOK || last.Status != "ready" {
					return fmt.Errorf("readyz answered %d %q", code, last.Status)
				}
				return nil
			})
		})
	}
	if code := status(srv.URL + "/v1/products"); code != 200 {
		t.Fatalf("after both recovered, an API read answers %d", code)
	}
}

// TestTwoReplicasReleaseADeadManDepositExactlyOnce runs two serve
// processes on one PostgreSQL database, both evaluating policies every
// second, and lets a dead-man deposit lapse.
func TestTwoReplicasReleaseADeadManDepositExactlyOnce(t *testing.T) {
	dsn := testenv.Postgres(t)
	mc := testenv.MinIO(t)
	bucket := mc.NewBucket(t, false)
	keys := t.TempDir()
	opts := func() testenv.ServeOptions {
		return testenv.ServeOptions{
			Args: []string{"--database", dsn, "--blobs", mc.URL(bucket), "--keys", keys, "--local-builders", "0", "--scheduler-every", "500ms"},
			Env:  []string{"AWS_ACCESS_KEY_ID=" + mc.AccessKey, "AWS_SECRET_ACCESS_KEY=" + mc.SecretKey},
		}
	}
	a := testenv.Serve(t, opts())
	b := testenv.Serve(t, opts())
	afterlife(t, true, "admin", "org", "create", "acme", "--server", a.URL, "--token", a.Token)
	vendor, _ := afterlife(t, true, "admin", "token", "create", "--name", "acme", "--role", "vendor", "--org", "acme", "--server", a.URL, "--token", a.Token)
	vendor = strings.TrimSpace(vendor)
	afterlife(t, true, "vendor", "product", "--id", "acme-router", "--vendor", "acme", "--model", "R1", "--device-ids", "dt:acme,r1", "--server", b.URL, "--token", vendor)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "router-spec.pdf"), []byte("%PDF router"), 0o644)
	out, _ := afterlife(t, true, "vendor", "deposit", "--rights", "**=public", "--product", "acme-router", "--policy", "dead-man=2s,1s",
		"--state", filepath.Join(dir, "state"), "--receipt", filepath.Join(dir, "r.json"), "--server", b.URL, "--token", vendor, dir+"/router-spec.pdf")
	id := strings.Fields(strings.TrimPrefix(out, "deposit "))[0]

	var dep struct {
		State string `json:"state"`
	}
	testenv.Eventually(t, time.Minute, func() error {
		apiJSON(t, "GET", a.URL+"/v1/deposits/"+id, "", nil, &dep)
		if dep.State != "released" {
			return fmt.Errorf("the dead-man deposit is %q, not released", dep.State)
		}
		return nil
	})
	// Deliberate pacing, not a wait for a condition: both replicas keep
	// ticking, and the test proves a second release does not come, so it
	// gives them a few more rounds to misbehave.
	time.Sleep(2 * time.Second)
	var evs struct {
		Events []struct{ Kind string } `json:"events"`
	}
	apiJSON(t, "GET", b.URL+"/v1/deposits/"+id+"/events", "", nil, &evs)
	released := 0
	for _, e := range evs.Events {
		if e.Kind == "released" {
			released++
		}
	}
	if released != 1 {
		t.Fatalf("the deposit was released %d times (events %+v), want exactly once", released, evs.Events)
	}
	var feed bytes.Buffer
	resp, err := http.Get(b.URL + "/feeds/releases.atom")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(&feed, resp.Body)
	resp.Body.Close()
	if strings.Count(feed.String(), id) == 0 {
		t.Fatalf("the Atom feed does not announce %s", id)
	}
}
