package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/afterlife-oss/afterlife/internal/blob"
	"github.com/afterlife-oss/afterlife/internal/blob/s3store"
	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/dbtest"
	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/testenv"
	"github.com/afterlife-oss/afterlife/registry/device"
)

func TestDownloadsFromDisk(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d, envOptions{})
		b, fw := e.firmware("1.0.0")
		rel := e.publish(PublishRequest{BuildID: b, Version: "1.0.0", Channel: Stable})
		a := rel.Offered()
		for _, p := range []string{
			"/v1/releases/" + rel.ID + "/artifacts/" + a.Name,
			"/tuf/targets/demo-cam/1.0.0/" + a.sha256Hex() + "." + a.Name,
		} {
			t.Run("GET "+p+" serves the whole file with its length and ETag", func(t *testing.T) {
				resp, body := e.do("GET", p, "", nil)
				if resp.StatusCode != http.StatusOK || string(body) != string(fw) {
					t.Fatalf("got %d, %d bytes", resp.StatusCode, len(body))
				}
				if resp.Header.Get("Content-Length") != strconv.Itoa(len(fw)) || resp.Header.Get("ETag") != `"`+sha256Hex(fw)+`"` {
					t.Fatalf("headers: %v", resp.Header)
				}
			})
			t.Run("GET "+p+" resumes with Range", func(t *testing.T) {
				resp, body := e.do("GET", p, "", nil, "Range", "bytes=100-")
				if resp.StatusCode != http.StatusPartialContent || string(body) != string(fw[100:]) {
					t.Fatalf("got %d, %d bytes", resp.StatusCode, len(body))
				}
			})
			t.Run("GET "+p+" answers If-None-Match with 304", func(t *testing.T) {
				resp, _ := e.do("GET", p, "", nil, "If-None-Match", `"`+sha256Hex(fw)+`"`)
				if resp.StatusCode != http.StatusNotModified {
					t.Fatalf("got %d", resp.StatusCode)
				}
			})
		}
		t.Run("the disk store serves plain files, the sendfile path", func(t *testing.T) {
			if _, ok := e.blobs.(blob.Filer); !ok {
				t.Fatal("fsstore is not a blob.Filer: downloads would not use sendfile")
			}
		})
		t.Run("a target path with a digest the index does not list is 404", func(t *testing.T) {
			other := strings.Repeat("ab", 32)
			if resp, _ := e.do("GET", "/tuf/targets/demo-cam/1.0.0/"+other+"."+a.Name, "", nil); resp.StatusCode != http.StatusNotFound {
				t.Fatalf("got %d", resp.StatusCode)
			}
		})
	})
}

func TestDownloadsFromS3RedirectToAPresignedURL(t *testing.T) {
	m := testenv.MinIO(t)
	store, err := s3store.New(context.Background(), m.Config(m.NewBucket(t, false)))
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, dbtest.SQLite(t), envOptions{blobs: store})
	b, fw := e.firmware("1.0.0")
	rel := e.publish(PublishRequest{BuildID: b, Version: "1.0.0", Channel: Stable})
	a := rel.Offered()
	for _, p := range []string{"/v1/releases/" + rel.ID + "/artifacts/" + a.Name, "/tuf/targets/demo-cam/1.0.0/" + a.sha256Hex() + "." + a.Name} {
		resp, _ := e.do("GET", p, "", nil)
		loc := resp.Header.Get("Location")
		if resp.StatusCode != http.StatusTemporaryRedirect || !strings.Contains(loc, "X-Amz-Signature") {
			t.Fatalf("%s: got %d Location %q, want a redirect to a presigned URL", p, resp.StatusCode, loc)
		}
		got, err := http.Get(loc)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(got.Body)
		got.Body.Close()
		if got.StatusCode != http.StatusOK || string(body) != string(fw) {
			t.Fatalf("presigned URL: %d, %d bytes", got.StatusCode, len(body))
		}
	}
	t.Run("the device client follows the redirect and installs", func(t *testing.T) {
		cfg := e.deviceConfig(t, "usb:1d6b:0104", true)
		res, err := device.Update(context.Background(), cfg, "0.1.0")
		if err != nil || !res.Updated || res.Version != "1.0.0" {
			t.Fatalf("update: %+v %v", res, err)
		}
	})
}

func (e *env) deviceConfig(t *testing.T, id string, community bool) device.Config {
	t.Helper()
	dir := t.TempDir()
	cfg := device.Config{Registry: e.srv.URL, StateDir: filepath.Join(dir, "state"), InstallDir: filepath.Join(dir, "install"), DeviceID: id, Channel: Stable}
	_, root := e.do("GET", "/tuf/1.root.json", "", nil)
	if err := device.Init(context.Background(), cfg, root, community); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestDeviceUpdatesEndToEnd(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d, envOptions{})
		b, _ := e.firmware("1.0.0")
		rel := e.publish(PublishRequest{BuildID: b, Version: "1.0.0", Channel: Stable, Notes: "open firmware"})
		ctx := context.Background()

		t.Run("a device without the owner's opt-in refuses the community release", func(t *testing.T) {
			cfg := e.deviceConfig(t, "usb:1d6b:0104", false)
			if _, err := device.Update(ctx, cfg, "0.9.0"); !errs.Is(err, errs.Forbidden) {
				t.Fatalf("got %v, want Forbidden", err)
			}
		})
		t.Run("an opted-in device installs it into an A/B slot and reports success", func(t *testing.T) {
			cfg := e.deviceConfig(t, "usb:1d6b:0104", true)
			res, err := device.Update(ctx, cfg, "0.9.0")
			if err != nil || !res.Updated || res.Version != "1.0.0" || res.ReportErr != nil {
				t.Fatalf("update: %+v %v", res, err)
			}
			if v, err := device.Current(cfg); err != nil || v != "1.0.0" {
				t.Fatalf("current = %q %v", v, err)
			}
			st, err := e.svc.Stats(ctx, rel.ID)
			if err != nil || st.Success != 1 {
				t.Fatalf("stats = %+v %v", st, err)
			}
			res, err = device.Update(ctx, cfg, "1.0.0")
			if err != nil || res.Updated {
				t.Fatalf("second update: %+v %v, want up to date", res, err)
			}
		})
	})
}

func TestReportsAndPullBack(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d, envOptions{reportsPerHour: 1000})
		b, _ := e.firmware("1.0.0")
		rel := e.publish(PublishRequest{BuildID: b, Version: "1.0.0", Channel: Stable})
		report := func(outcome, reason string) int {
			resp, body := e.do("POST", "/v1/devices/reports", "", device.Report{DeviceID: "usb:1d6b:0104", ReleaseID: rel.ID, Version: "1.0.0", Outcome: outcome, Reason: reason})
			if resp.StatusCode >= 300 {
				t.Logf("report: %d %s", resp.StatusCode, body)
			}
			return resp.StatusCode
		}
		t.Run("a vendor sets its product's pull-back policy", func(t *testing.T) {
			resp, body := e.do("POST", "/v1/products/demo-cam/pullback-policy", e.vendor, PolicyRequest{MinFailures: 3, FailurePercent: 50})
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("%d %s", resp.StatusCode, body)
			}
			if resp, _ := e.do("POST", "/v1/products/demo-cam/pullback-policy", e.maint, PolicyRequest{MinFailures: 1, FailurePercent: 1}); resp.StatusCode != http.StatusForbidden {
				t.Fatalf("maintainer set the policy: %d", resp.StatusCode)
			}
		})
		t.Run("bad reports are refused", func(t *testing.T) {
			for _, r := range []device.Report{
				{DeviceID: "usb:1d6b:0104", ReleaseID: rel.ID, Version: "1.0.0", Outcome: "maybe"},
				{DeviceID: "no scheme", ReleaseID: rel.ID, Version: "1.0.0", Outcome: "success"},
				{DeviceID: "usb:1d6b:0104", ReleaseID: rel.ID, Version: "9.9.9", Outcome: "success"},
			} {
				if resp, _ := e.do("POST", "/v1/devices/reports", "", r); resp.StatusCode != http.StatusBadRequest {
					t.Fatalf("%+v: %d, want 400", r, resp.StatusCode)
				}
			}
			big := strings.Repeat("x", 5000)
			if resp, _ := e.do("POST", "/v1/devices/reports", "", device.Report{DeviceID: "usb:1", ReleaseID: rel.ID, Version: "1.0.0", Outcome: "failure", Reason: big}); resp.StatusCode != http.StatusRequestEntityTooLarge {
				t.Fatalf("5 KB body: %d, want 413", resp.StatusCode)
			}
		})
		t.Run("failures under the threshold keep the release offered", func(t *testing.T) {
			for range 4 {
				report("success", "")
			}
			report("failure", "flash write error")
			report("failure", strings.Repeat("é", 600))
			if resp, _ := e.check("usb:1d6b:0104", "0.9.0", "stable"); resp.StatusCode != http.StatusOK {
				t.Fatalf("release no longer offered after 2 failures: %d", resp.StatusCode)
			}
		})
		t.Run("passing the threshold pulls the release back to testing and records an event", func(t *testing.T) {
			for range 4 {
				if code := report("failure", "flash write error"); code != http.StatusNoContent {
					t.Fatalf("report: %d", code)
				}
			}
			if resp, _ := e.check("usb:1d6b:0104", "0.9.0", "stable"); resp.StatusCode != http.StatusNoContent {
				t.Fatalf("pulled-back release still offered on stable: %d", resp.StatusCode)
			}
			if resp, _ := e.check("usb:1d6b:0104", "0.9.0", "testing"); resp.StatusCode != http.StatusNoContent {
				t.Fatalf("pulled-back release still offered on testing: %d", resp.StatusCode)
			}
			got, _ := e.svc.Get(context.Background(), rel.ID)
			if !got.PulledBack || got.Channel != Testing {
				t.Fatalf("release after pull-back: %+v", got)
			}
			_, body := e.do("GET", "/v1/products/demo-cam/events", "", nil)
			if !strings.Contains(string(body), `"pulled_back"`) {
				t.Fatalf("no pull-back event: %s", body)
			}
			_, body = e.do("GET", "/v1/products/demo-cam/overview", "", nil)
			if !strings.Contains(string(body), `"pulled_back":true`) {
				t.Fatalf("overview does not show the pull-back: %s", body)
			}
		})
		t.Run("the release's report stats count outcomes and top reasons", func(t *testing.T) {
			resp, body := e.do("GET", "/v1/releases/"+rel.ID+"/reports", "", nil)
			if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"success":4`) || !strings.Contains(string(body), `"failure":6`) ||
				!strings.Contains(string(body), `{"reason":"flash write error","count":5}`) {
				t.Fatalf("%d %s", resp.StatusCode, body)
			}
			st, _ := e.svc.Stats(context.Background(), rel.ID)
			for _, f := range st.TopFailures {
				if n := len([]rune(f.Reason)); n > maxReason {
					t.Fatalf("a reason of %d characters was kept", n)
				}
			}
		})
	})
}

func TestReportsAreRateLimitedPerClient(t *testing.T) {
	e := newEnv(t, dbtest.SQLite(t), envOptions{reportsPerHour: 3})
	b, _ := e.firmware("1.0.0")
	rel := e.publish(PublishRequest{BuildID: b, Version: "1.0.0", Channel: Stable})
	send := func() *http.Response {
		resp, _ := e.do("POST", "/v1/devices/reports", "", device.Report{DeviceID: "usb:1d6b:0104", ReleaseID: rel.ID, Version: "1.0.0", Outcome: "success"})
		return resp
	}
	for i := range 3 {
		if resp := send(); resp.StatusCode != http.StatusNoContent {
			t.Fatalf("report %d: %d", i, resp.StatusCode)
		}
	}
	resp := send()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("4th report: %d, Retry-After %q; want 429", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	e.clock.add(20 * 60e9) // a third of the hour refills one token
	if resp := send(); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("after refill: %d", resp.StatusCode)
	}
}

func TestUpdateChecksShedLoadWhenFull(t *testing.T) {
	e := newEnv(t, dbtest.SQLite(t), envOptions{maxUpdateLoad: 2})
	b, _ := e.firmware("1.0.0")
	e.publish(PublishRequest{BuildID: b, Version: "1.0.0", Channel: Stable})
	e.svc.updateSem <- struct{}{}
	e.svc.updateSem <- struct{}{}
	resp, _ := e.check("usb:1d6b:0104", "0.9.0", "stable")
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "1" {
		t.Fatalf("full: %d Retry-After %q, want 503 and 1", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	<-e.svc.updateSem
	if resp, _ := e.check("usb:1d6b:0104", "0.9.0", "stable"); resp.StatusCode != http.StatusOK {
		t.Fatalf("with room: %d", resp.StatusCode)
	}
}

func TestUpdateChecksNeedNoDatabase(t *testing.T) {
	e := newEnv(t, dbtest.SQLite(t), envOptions{})
	b, fw := e.firmware("1.0.0")
	rel := e.publish(PublishRequest{BuildID: b, Version: "1.0.0", Channel: Stable})
	if err := e.d.Close(); err != nil {
		t.Fatal(err)
	}
	for range 100 {
		if resp, o := e.check("usb:1d6b:0104", "0.9.0", "stable"); resp.StatusCode != http.StatusOK || o.ReleaseID != rel.ID {
			t.Fatalf("with the database closed: %d %+v", resp.StatusCode, o)
		}
	}
	a := rel.Offered()
	if resp, body := e.do("GET", "/tuf/targets/demo-cam/1.0.0/"+a.sha256Hex()+"."+a.Name, "", nil); resp.StatusCode != http.StatusOK || string(body) != string(fw) {
		t.Fatalf("target download with the database closed: %d", resp.StatusCode)
	}
	if err := e.svc.Poll(context.Background()); err == nil {
		t.Fatal("poll succeeded on a closed database: the test did not cut the database off")
	}
}

func TestReplicasFollowEachOtherThroughTheGeneration(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		a := newEnv(t, d, envOptions{})
		other, err := New(context.Background(), Options{DB: d, Blobs: a.blobs, TUF: a.repo, Catalog: a.cat, Builds: a.farm, ReplicaID: "replica-b"})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := a.firmware("1.0.0")
		a.publish(PublishRequest{BuildID: b, Version: "1.0.0", Channel: Stable})
		if o := other.index.Load().lookup("usb:1d6b:0104", "0.9.0", Stable); o != nil {
			t.Fatal("the other replica knew before polling")
		}
		if err := other.Poll(context.Background()); err != nil {
			t.Fatal(err)
		}
		if o := other.index.Load().lookup("usb:1d6b:0104", "0.9.0", Stable); o == nil || o.version != "1.0.0" {
			t.Fatalf("after poll: %+v", o)
		}
		if other.Generation() != a.svc.Generation() {
			t.Fatalf("generations differ: %d vs %d", other.Generation(), a.svc.Generation())
		}
	})
}

func TestRunRefreshesTheTimestampUnderTheLease(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d, envOptions{})
		ts := func() string {
			_, body := e.do("GET", "/tuf/timestamp.json", "", nil)
			return string(body)
		}
		old := ts()
		// The margin is longer than the timestamp's life, so it is due.
		e.svc.o.TimestampMargin = 48 * 3600e9
		ok, err := d.TryLease(context.Background(), tufLease, "replica-z", 60e9, e.clock.now())
		if err != nil || !ok {
			t.Fatal(ok, err)
		}
		e.svc.refreshTimestamp(context.Background())
		if ts() != old {
			t.Fatal("a replica signed while another held the lease")
		}
		if err := d.ReleaseLease(context.Background(), tufLease, "replica-z"); err != nil {
			t.Fatal(err)
		}
		e.svc.refreshTimestamp(context.Background())
		if ts() == old {
			t.Fatal("the timestamp was not re-signed")
		}
	})
}

func TestOverviewAndSearch(t *testing.T) {
	e := newEnv(t, dbtest.SQLite(t), envOptions{})
	e.svc.o.Escrow = escrowFunc(func(ctx context.Context, id string) (Escrow, error) {
		return Escrow{Deposits: 1, Released: 1, Policy: "immediate"}, nil
	})
	e.svc.o.Farm = farmFunc(func(ctx context.Context, id string, limit int) ([]BuildSummary, error) {
		return []BuildSummary{{ID: "bld_1", Recipe: "cam-fw", Verdict: "reproducible", Agreeing: 2, Total: 2}}, nil
	})
	b, _ := e.firmware("1.0.0")
	e.publish(PublishRequest{BuildID: b, Version: "1.0.0", Channel: Stable})
	resp, body := e.do("GET", "/v1/products/demo-cam/overview", "", nil)
	for _, want := range []string{`"released":1`, `"verdict":"reproducible"`, `"verdict":{"agreeing":2,"total":2`, `"status":"supported"`, `"min_failures":5`} {
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), want) {
			t.Fatalf("overview misses %s: %d %s", want, resp.StatusCode, body)
		}
	}
	for _, q := range []string{"usb:1d6b:0104", "Demo Cam", "acme"} {
		_, body := e.do("GET", "/v1/search?q="+strings.ReplaceAll(q, " ", "+"), "", nil)
		if !strings.Contains(string(body), `"id":"demo-cam"`) {
			t.Fatalf("search %q: %s", q, body)
		}
	}
	if resp, _ := e.do("GET", "/v1/products/nope/overview", "", nil); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("unknown product: %d", resp.StatusCode)
	}
	e.svc.o.Escrow = escrowFunc(func(ctx context.Context, id string) (Escrow, error) { return Escrow{}, errors.New("escrow down") })
	if resp, _ := e.do("GET", "/v1/products/demo-cam/overview", "", nil); resp.StatusCode != http.StatusInternalServerError {
		t.Fatalf("escrow failure: %d", resp.StatusCode)
	}
}

type escrowFunc func(ctx context.Context, id string) (Escrow, error)

func (f escrowFunc) ProductEscrow(ctx context.Context, id string) (Escrow, error) { return f(ctx, id) }

type farmFunc func(ctx context.Context, id string, limit int) ([]BuildSummary, error)

func (f farmFunc) BuildsForProduct(ctx context.Context, id string, limit int) ([]BuildSummary, error) {
	return f(ctx, id, limit)
}

func TestCompareVersions(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"1.0.0", "1.0.0", 0}, {"1.0", "1.0.0", 0}, {"v1.2", "1.2", 0},
		{"1.10.0", "1.9.0", 1}, {"2", "1.99.99", 1}, {"1.0.0-rc.1", "1.0.0", -1},
		{"1.0.0-rc.2", "1.0.0-rc.10", -1}, {"1.0.0-alpha", "1.0.0-1", 1}, {"1.0.0+b1", "1.0.0+b2", 0},
		{"1.0.0-alpha", "1.0.0-alpha.1", -1}, {"010.0", "9.0", 1},
	} {
		t.Run(fmt.Sprintf("%s compared with %s is %d", tc.a, tc.b, tc.want), func(t *testing.T) {
			if got := CompareVersions(tc.a, tc.b); got != tc.want {
				t.Fatalf("got %d", got)
			}
			if got := CompareVersions(tc.b, tc.a); got != -tc.want {
				t.Fatalf("reversed: got %d", got)
			}
		})
	}
	for _, v := range []string{"", "v", "1.", ".1", "1..2", "1.0/x", "latest", "1.0-", "1.0 "} {
		if ValidVersion(v) {
			t.Errorf("ValidVersion(%q) = true", v)
		}
	}
}

func FuzzCompareVersions(f *testing.F) {
	for _, s := range []string{"1.0.0", "1.0.0-rc.1", "v2", "1.0+x", "0.0.0-0.a.1"} {
		f.Add(s, "1.0.0")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		if !ValidVersion(a) || !ValidVersion(b) {
			return
		}
		if CompareVersions(a, b) != -CompareVersions(b, a) {
			t.Fatalf("not antisymmetric: %q %q", a, b)
		}
		if CompareVersions(a, a) != 0 {
			t.Fatalf("%q not equal to itself", a)
		}
	})
}

func TestRunPicksUpAnotherReplicasChange(t *testing.T) {
	d := dbtest.SQLite(t)
	a := newEnv(t, d, envOptions{})
	other, err := New(context.Background(), Options{DB: d, Blobs: a.blobs, TUF: a.repo, Catalog: a.cat, Builds: a.farm,
		ReplicaID: "replica-b", PollInterval: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- other.Run(ctx) }()
	defer func() { cancel(); <-done }()
	b, _ := a.firmware("1.0.0")
	a.publish(PublishRequest{BuildID: b, Version: "1.0.0", Channel: Stable})
	deadline := time.Now().Add(10 * time.Second)
	for other.index.Load().lookup("usb:1d6b:0104", "0.9.0", Stable) == nil {
		if time.Now().After(deadline) {
			t.Fatal("the running replica did not pick up the release within 10s")
		}
		runtime.Gosched()
	}
}
