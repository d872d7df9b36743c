package clustertest

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/afterlife-oss/afterlife/recipes"
	"github.com/afterlife-oss/afterlife/recipes/examples"
)

const (
	product  = "demo-cam"
	deviceID = "demo:afterlife-cam"
	org      = "demo"
)

// TestClusterStorySurvivesFaults tells the whole afterlife story through a
// load balancer in front of two replicas while the cluster is broken under
// it: a replica killed mid-upload, MinIO away during an upload, a replica
// and a builder killed mid-build, PostgreSQL restarted mid-build. Every
// acknowledged deposit must come back intact, the build must end with one
// reproducible verdict, the release must be published exactly once, and a
// device must end on it.
func TestClusterStorySurvivesFaults(t *testing.T) {
	began := time.Now()
	c := startCluster(t)
	t.Logf("cluster up after %s: postgres, minio, 2 replicas behind %s, 3 builders", time.Since(began).Round(time.Millisecond), c.lb.URL)

	admin := []string{"--server", c.lb.URL, "--token", c.admin}
	c.mustCLI(t, append([]string{"admin", "org", "create", org, "--name", "Demo Devices Inc.", "--kind", "vendor"}, admin...)...)
	vendorToken := strings.TrimSpace(c.mustCLI(t, append([]string{"admin", "token", "create", "--name", "demo-ci", "--role", "vendor", "--org", org}, admin...)...).stdout)
	vendor := []string{"--server", c.lb.URL, "--token", vendorToken}
	c.mustCLI(t, append([]string{"vendor", "product", "--id", product, "--vendor", org, "--model", "AfterLife Cam 1",
		"--revisions", "A,B", "--device-ids", deviceID, "--eol", "2026-06-30"}, vendor...)...)

	var deposits []deposited

	// Fault 1: the replica that receives a 64 MiB upload dies in the middle.
	t.Run("a deposit survives its replica being killed mid-upload", func(t *testing.T) {
		step := time.Now()
		dir := filepath.Join(t.TempDir(), "sunset")
		big := make([]byte, 64<<20)
		rng := rand.NewChaCha8([32]byte{1, 2, 3})
		rng.Read(big)
		d := deposited{files: map[string]string{
			"firmware/vendor-image.bin": writeFile(t, dir, "firmware/vendor-image.bin", big),
			"docs/board.md":             writeFile(t, dir, "docs/board.md", []byte("# board\nSoC: ARMv7\n")),
		}}
		gate := newUploadGate(16 << 20)
		c.lb.gate.Store(gate)
		defer c.lb.gate.Store(nil)
		before := c.lb.badGateway.Load()
		on := time.Now().Add(3 * time.Second).UTC().Format(time.RFC3339)
		done := c.cliAsync(append([]string{"vendor", "deposit", "--rights", "**=public", "--product", product, "--policy", "on=" + on,
			"--state", filepath.Join(t.TempDir(), "state.json"), "--receipt", filepath.Join(t.TempDir(), "big.receipt.json"), dir}, vendor...)...)
		var victim int
		select {
		case victim = <-gate.hit:
		case r := <-done:
			t.Fatalf("the upload ended before 16 MiB went through the balancer:\n%s", r)
		case <-time.After(2 * time.Minute):
			t.Fatal("no upload reached 16 MiB within 2 minutes")
		}
		t.Logf("replica %d receives the upload at 16 MiB: SIGKILL", victim+1)
		c.replicas[victim].Stop(syscall.SIGKILL)
		close(gate.release)
		r := <-done
		if r.code != 0 {
			t.Fatalf("vendor deposit did not survive the replica kill:\n%s", r)
		}
		if c.lb.badGateway.Load() == before {
			t.Errorf("the kill was not felt: no 502 from the balancer during the upload")
		}
		d.id = depositID(t, r)
		deposits = append(deposits, d)
		c.replicas[victim].Restart()
		t.Logf("deposit %s committed in %s despite the kill (%d 502s, %d reroutes so far); replica %d restarted",
			d.id, r.took.Round(time.Millisecond), c.lb.badGateway.Load(), c.lb.rerouted.Load(), victim+1)
		_ = step
	})
	if t.Failed() {
		return
	}

	// Fault 2: the blob store goes away for a few seconds during an upload.
	t.Run("a deposit survives MinIO being away for a few seconds", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "sunset")
		d := deposited{files: map[string]string{
			"docs/datasheet.md": writeFile(t, dir, "docs/datasheet.md", []byte("# AfterLife Cam 1\n\nSoC: ARMv7 (Cortex-A7), 128 MiB RAM.\n")),
			"src/camd.conf":     writeFile(t, dir, "src/camd.conf", []byte("listen = :8080\ncloud = https://cloud.vendor.invalid\n")),
		}}
		if err := c.minio.Stop(); err != nil {
			t.Fatal(err)
		}
		downAt := time.Now()
		on := time.Now().Add(3 * time.Second).UTC().Format(time.RFC3339)
		done := c.cliAsync(append([]string{"vendor", "deposit", "--rights", "**=public", "--product", product, "--policy", "on=" + on,
			"--state", filepath.Join(t.TempDir(), "state.json"), "--receipt", filepath.Join(t.TempDir(), "small.receipt.json"), dir}, vendor...)...)
		// Let the outage last a few seconds: this pause is the fault itself.
		time.Sleep(3 * time.Second)
		if err := c.minio.Start(); err != nil {
			t.Fatal(err)
		}
		t.Logf("MinIO was away for %s", time.Since(downAt).Round(time.Millisecond))
		r := <-done
		if r.code != 0 {
			t.Fatalf("vendor deposit did not survive MinIO being away:\n%s", r)
		}
		d.id = depositID(t, r)
		deposits = append(deposits, d)
	})
	if t.Failed() {
		return
	}

	t.Run("every acknowledged deposit is released intact", func(t *testing.T) {
		for _, d := range deposits {
			c.checkReleasedIntact(t, d)
		}
	})

	// Faults 3, 4, 5: a builder and a replica die while jobs are leased,
	// and PostgreSQL restarts under the running build.
	var buildID string
	t.Run("a build survives a builder, a replica and PostgreSQL going down", func(t *testing.T) {
		repo := filepath.Join(t.TempDir(), "afterlife-cam.git")
		src, err := examples.Dir("afterlife-cam")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := recipes.CommitTree(t.Context(), repo, src, "afterlife-cam 1.0.0", time.Unix(1_700_000_000, 0)); err != nil {
			t.Fatal(err)
		}
		r := c.mustCLI(t, append([]string{"recipe", "submit", "--repo", "file://" + repo, "--ref", "HEAD"}, admin...)...)
		var sub struct {
			BuildID string `json:"build_id"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &sub); err != nil || sub.BuildID == "" {
			t.Fatalf("no build id from recipe submit (%v):\n%s", err, r)
		}
		buildID = sub.BuildID
		names := c.builderIDs()

		// The first leased job's builder dies with it.
		var victimJob, victimBuilder string
		submitted := time.Now()
		c.waitUntil(t, "a job of build "+buildID+" leased", 60*time.Second, func() (bool, string) {
			b, ok := c.build(buildID)
			for _, j := range b.Jobs {
				if j.State == "leased" {
					victimJob, victimBuilder = j.ID, j.BuilderID
					return true, ""
				}
			}
			if ok && b.State != "pending" {
				t.Fatalf("build %s ended %s before any job was seen leased: %s; results %+v", buildID, b.State, b.Verdict.Reason, b.Results)
			}
			return false, fmt.Sprintf("%v %+v", ok, b.Jobs)
		})
		t.Logf("first lease %s after the submission", time.Since(submitted).Round(time.Millisecond))
		killed := c.builderNamed(t, names[victimBuilder])
		killed.Stop(syscall.SIGKILL)
		t.Logf("job %s leased by %s: SIGKILL", victimJob, killed)

		// A replica dies while jobs are leased.
		b, _ := c.build(buildID)
		t.Logf("jobs when replica 2 is killed: %+v", b.Jobs)
		c.replicas[1].Stop(syscall.SIGKILL)

		// PostgreSQL restarts under the surviving replica.
		pgDown := time.Now()
		if err := c.pg.Stop(); err != nil {
			t.Fatal(err)
		}
		if err := c.pg.Start(); err != nil {
			t.Fatal(err)
		}
		t.Logf("PostgreSQL restarted in %s", time.Since(pgDown).Round(time.Millisecond))
		c.replicas[1].Restart()

		c.waitUntil(t, "a verdict on build "+buildID, 5*time.Minute, func() (bool, string) {
			b, ok := c.build(buildID)
			return ok && b.State != "pending" && b.State != "", fmt.Sprintf("%s jobs %+v", b.State, b.Jobs)
		})
		t.Logf("verdict %s after the submission", time.Since(submitted).Round(time.Millisecond))
		for _, bl := range c.builders {
			t.Logf("%s: %s", bl, strings.Join(bl.LogLines("job "), "\n\t"))
		}
		b, _ = c.build(buildID)
		if b.State != "reproducible" || b.Verdict.State != "reproducible" {
			t.Fatalf("build %s ended %s (verdict %s: %s); want reproducible", buildID, b.State, b.Verdict.State, b.Verdict.Reason)
		}
		if b.Verdict.Agreeing < b.Quorum || b.Quorum < 2 {
			t.Errorf("verdict: %d agreeing of quorum %d", b.Verdict.Agreeing, b.Quorum)
		}
		// The dead builder's job went back to the queue and another finished it.
		for _, j := range b.Jobs {
			if j.ID != victimJob {
				continue
			}
			if j.State != "done" || j.BuilderID == victimBuilder || j.BuilderID == "" {
				t.Errorf("job %s of the killed builder ended %s by %q; want done by another builder", j.ID, j.State, names[j.BuilderID])
			}
			if j.Attempts < 2 {
				t.Errorf("job %s: %d attempts; the lost lease should count one", j.ID, j.Attempts)
			}
		}
		for _, res := range b.Results {
			if res.BuilderID == victimBuilder {
				t.Errorf("a result came from the killed builder %s: %+v", killed.Name, res)
			}
		}
		t.Logf("build %s reproducible: %d agreeing; jobs %+v", buildID, b.Verdict.Agreeing, b.Jobs)
	})
	if t.Failed() {
		return
	}

	t.Run("the release is published exactly once", func(t *testing.T) {
		req := map[string]any{"build_id": buildID, "product": product, "version": "1.0.0", "channel": "stable",
			"notes": "First community release: local status API, no vendor cloud."}
		// Two publishes at once, through the balancer onto both replicas.
		codes := make([]int, 2)
		bodies := make([][]byte, 2)
		var wg sync.WaitGroup
		for i := range codes {
			wg.Go(func() { codes[i], bodies[i] = c.api(http.MethodPost, "/v1/releases", c.admin, req, nil) })
		}
		wg.Wait()
		created, conflicts := 0, 0
		for _, code := range codes {
			switch code {
			case http.StatusCreated, http.StatusOK:
				created++
			case http.StatusConflict:
				conflicts++
			}
		}
		if created != 1 || conflicts != 1 {
			t.Fatalf("two concurrent publishes answered %v (%s / %s); want one success and one 409", codes, bodies[0], bodies[1])
		}
		if code, body := c.api(http.MethodPost, "/v1/releases", c.admin, req, nil); code != http.StatusConflict {
			t.Errorf("publishing 1.0.0 again answered %d %s; want 409", code, body)
		}
		n := 0
		for _, rel := range c.releases(t, product) {
			if rel.Version == "1.0.0" {
				n++
			}
		}
		if n != 1 {
			t.Errorf("GET /v1/releases?product=%s lists %d releases 1.0.0; want exactly 1", product, n)
		}
	})
	if t.Failed() {
		return
	}

	t.Run("a device updates to the release through the balancer", func(t *testing.T) {
		// Each replica answers update checks from its own in-memory index,
		// which follows the database within seconds, restarts included.
		for i, r := range c.replicas {
			c.waitUntil(t, fmt.Sprintf("replica %d offers 1.0.0", i+1), 20*time.Second, func() (bool, string) {
				resp, err := c.client.Get(r.URL + "/v1/devices/updates?version=0&channel=stable&id=" + url.QueryEscape(deviceID))
				if err != nil {
					return false, err.Error()
				}
				defer resp.Body.Close()
				var offer struct{ Version string }
				json.NewDecoder(resp.Body).Decode(&offer)
				return resp.StatusCode == http.StatusOK && offer.Version == "1.0.0", fmt.Sprintf("%s %+v", resp.Status, offer)
			})
		}
		state, install := filepath.Join(t.TempDir(), "state"), filepath.Join(t.TempDir(), "device")
		c.mustCLI(t, "device", "init", "--registry", c.lb.URL, "--state", state, "--id", deviceID, "--accept-community-firmware", "--trust-on-first-use")
		c.mustCLI(t, "device", "update", "--registry", c.lb.URL, "--state", state, "--current", "0", "--install-to", install)
		status := c.mustCLI(t, "device", "status", "--state", state, "--install-to", install).stdout
		if !slices.ContainsFunc(strings.Split(status, "\n"), func(l string) bool {
			return strings.HasPrefix(l, "slot") && strings.Contains(l, " 1.0.0 ") && strings.HasSuffix(l, "← active")
		}) {
			t.Errorf("device status prints %q; want 1.0.0 in the active slot", status)
		}
		raw, err := os.ReadFile(filepath.Join(install, "current", "release.json"))
		if err != nil {
			t.Fatal(err)
		}
		var installed struct {
			Product, Version, File, SHA256 string
		}
		if err := json.Unmarshal(raw, &installed); err != nil {
			t.Fatal(err)
		}
		rels := c.releases(t, product)
		if len(rels) != 1 {
			t.Fatalf("%d releases of %s", len(rels), product)
		}
		var firmware string
		for _, a := range rels[0].Artifacts {
			if a.Kind == "firmware" {
				firmware = strings.TrimPrefix(a.Digest, "sha256:")
			}
		}
		data, err := os.ReadFile(filepath.Join(install, "current", installed.File))
		if err != nil {
			t.Fatal(err)
		}
		if installed.Product != product || installed.Version != "1.0.0" || installed.SHA256 != firmware || sha256Hex(data) != firmware {
			t.Errorf("installed %s %s sha256 %s (file %s); want %s 1.0.0 with the release's firmware %s",
				installed.Product, installed.Version, installed.SHA256, sha256Hex(data), product, firmware)
		}
	})

	t.Logf("story done in %s; balancer answered %d 502s and moved %d tries off a dead replica; served per replica: %d / %d",
		time.Since(began).Round(time.Millisecond), c.lb.badGateway.Load(), c.lb.rerouted.Load(), c.lb.served[0].Load(), c.lb.served[1].Load())
}
