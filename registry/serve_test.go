package registry

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"path/filepath"
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

func TestDownloadsFromS3RedirectToAPresignedURLOnThePublicURL(t *testing.T) {
	m := testenv.MinIO(t)
	cfg := m.Config(m.NewBucket(t, false))
	// The registry reaches MinIO as 127.0.0.1:PORT, devices as
	// localhost:PORT: a Location on the internal address would be one a
	// device behind compose or Kubernetes cannot reach.
	_, port, _ := strings.Cut(cfg.Endpoint, ":")
	cfg.PublicURL = "http://localhost:" + port
	store, err := s3store.New(context.Background(), cfg)
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
		if resp.StatusCode != http.StatusTemporaryRedirect || !strings.HasPrefix(loc, cfg.PublicURL+"/") || !strings.Contains(loc, "X-Amz-Signature") {
			t.Fatalf("%s: got %d Location %q, want a redirect to a presigned URL on %s", p, resp.StatusCode, loc, cfg.PublicURL)
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
		if res.ReportErr != nil {
			t.Fatalf("the report was refused: the receipt did not survive the redirect: %v", res.ReportErr)
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

// install downloads the release's firmware as a device with a new install
// id would, and returns a report carrying the receipt it got.
func (e *env) install(rel Release, outcome, reason string) device.Report {
	e.t.Helper()
	id := newInstallID(e.t)
	a := rel.Offered()
	resp, body := e.do("GET", "/tuf/targets/"+path.Dir(a.Target)+"/"+a.sha256Hex()+"."+a.Name, "", nil, InstallIDHeader, id)
	if resp.StatusCode != http.StatusOK || int64(len(body)) != a.Size || resp.Header.Get(ReceiptHeader) == "" {
		e.t.Fatalf("download: %d, %d bytes, receipt %q", resp.StatusCode, len(body), resp.Header.Get(ReceiptHeader))
	}
	return device.Report{DeviceID: "usb:1d6b:0104", ReleaseID: rel.ID, Version: rel.Version, Outcome: outcome, Reason: reason,
		InstallID: id, Receipt: resp.Header.Get(ReceiptHeader)}
}

func newInstallID(t *testing.T) string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// sendReport posts r as if from address from (the test server trusts
// X-Forwarded-For from 127.0.0.1, as afterlife serve does from local
// proxies).
func (e *env) sendReport(r device.Report, from string) (int, string) {
	e.t.Helper()
	resp, body := e.do("POST", "/v1/devices/reports", "", r, "X-Forwarded-For", from)
	return resp.StatusCode, string(body)
}

func TestReportsCountOnlyWithAReceiptAndHoldAReleaseForReview(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		e := newEnv(t, d, envOptions{reportsPerHour: 2000})
		b, _ := e.firmware("1.0.0")
		rel := e.publish(PublishRequest{BuildID: b, Version: "1.0.0", Channel: Stable})
		b2, _ := e.firmware("1.1.0")
		other := e.publish(PublishRequest{BuildID: b2, Version: "1.1.0", Channel: Testing})
		t.Run("a vendor sets its product's review policy", func(t *testing.T) {
			resp, body := e.do("POST", "/v1/products/demo-cam/pullback-policy", e.vendor, PolicyRequest{MinFailures: 3, FailurePercent: 50, MinNetworks: 3})
			if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"min_networks":3`) {
				t.Fatalf("%d %s", resp.StatusCode, body)
			}
			if resp, _ := e.do("POST", "/v1/products/demo-cam/pullback-policy", e.maint, PolicyRequest{MinFailures: 1, FailurePercent: 1}); resp.StatusCode != http.StatusForbidden {
				t.Fatalf("maintainer set the policy: %d", resp.StatusCode)
			}
		})
		t.Run("forged reports are refused and change nothing", func(t *testing.T) {
			genuine := e.install(other, "failure", "")
			for _, f := range []struct {
				name string
				r    device.Report
			}{
				{"no receipt", device.Report{InstallID: newInstallID(t)}},
				{"an invented receipt", device.Report{InstallID: newInstallID(t), Receipt: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}},
				{"another release's receipt", device.Report{InstallID: genuine.InstallID, Receipt: genuine.Receipt}},
				{"a receipt of another install", device.Report{InstallID: newInstallID(t), Receipt: e.install(rel, "", "").Receipt}},
			} {
				f.r.DeviceID, f.r.ReleaseID, f.r.Version, f.r.Outcome = "usb:1d6b:0104", rel.ID, "1.0.0", "failure"
				for i := range 10 {
					if code, body := e.sendReport(f.r, fmt.Sprintf("198.51.%d.7", i)); code != http.StatusForbidden || !strings.Contains(body, "receipt") {
						t.Fatalf("%s: %d %s, want 403 naming the receipt", f.name, code, body)
					}
				}
			}
			if st, _ := e.svc.Stats(ctx, rel.ID); st.Success+st.Failure != 0 {
				t.Fatalf("forged reports were counted: %+v", st)
			}
		})
		t.Run("bad reports are refused", func(t *testing.T) {
			for _, mod := range []func(*device.Report){
				func(r *device.Report) { r.Outcome = "maybe" },
				func(r *device.Report) { r.DeviceID = "no scheme" },
				func(r *device.Report) { r.Version = "9.9.9" },
			} {
				r := e.install(rel, "success", "")
				mod(&r)
				if code, _ := e.sendReport(r, "192.0.2.1"); code != http.StatusBadRequest {
					t.Fatalf("%+v: %d, want 400", r, code)
				}
			}
			r := e.install(rel, "failure", strings.Repeat("x", 5000))
			if code, _ := e.sendReport(r, "192.0.2.1"); code != http.StatusRequestEntityTooLarge {
				t.Fatalf("5 KB body: %d, want 413", code)
			}
		})
		t.Run("one network counts at most a few times", func(t *testing.T) {
			for i := range 4 {
				if code, body := e.sendReport(e.install(rel, "success", ""), fmt.Sprintf("10.0.%d.1", i)); code != http.StatusNoContent {
					t.Fatalf("success report: %d %s", code, body)
				}
			}
			for i := range 12 {
				if code, body := e.sendReport(e.install(rel, "failure", "flash write error"), fmt.Sprintf("203.0.113.%d", i)); code != http.StatusNoContent {
					t.Fatalf("failure report: %d %s", code, body)
				}
			}
			st, _ := e.svc.Stats(ctx, rel.ID)
			if st.Success != 4 || st.Failure != 5 || st.FailingNetworks != 1 {
				t.Fatalf("stats = %+v, want 4 successes and 5 failures from 1 network", st)
			}
			if resp, _ := e.check("usb:1d6b:0104", "0.9.0", "stable"); resp.StatusCode != http.StatusOK {
				t.Fatalf("release no longer offered after failures from one network: %d", resp.StatusCode)
			}
		})
		t.Run("a device reporting again replaces its report", func(t *testing.T) {
			r := e.install(rel, "failure", "flash write error")
			e.sendReport(r, "2001:db8:1:2::1")
			r.Outcome, r.Reason = "success", ""
			e.sendReport(r, "2001:db8:1:3::1")
			if st, _ := e.svc.Stats(ctx, rel.ID); st.Success != 5 || st.Failure != 5 {
				t.Fatalf("stats = %+v", st)
			}
		})
		t.Run("failures from enough networks hold the release for review", func(t *testing.T) {
			for _, from := range []string{"2001:db8:aaaa::1", "100.64.7.9"} {
				if code, body := e.sendReport(e.install(rel, "failure", "flash write error"), from); code != http.StatusNoContent {
					t.Fatalf("failure report: %d %s", code, body)
				}
			}
			got, _ := e.svc.Get(ctx, rel.ID)
			if !got.Held || got.PulledBack || got.Channel != Stable || !strings.Contains(got.HeldReason, "3 networks") {
				t.Fatalf("release after failures from 3 networks: %+v", got)
			}
			if resp, _ := e.check("usb:1d6b:0104", "0.9.0", "stable"); resp.StatusCode != http.StatusNoContent {
				t.Fatalf("held release still offered: %d", resp.StatusCode)
			}
			if _, body := e.do("GET", "/v1/products/demo-cam/events", "", nil); !strings.Contains(string(body), `"kind":"held"`) {
				t.Fatalf("no held event: %s", body)
			}
			if resp, _ := e.do("POST", "/v1/releases/"+rel.ID+"/promote", e.admin, nil); resp.StatusCode != http.StatusConflict {
				t.Fatalf("promoting a held release: %d", resp.StatusCode)
			}
		})
		t.Run("only a maintainer of the product or an admin confirms", func(t *testing.T) {
			for _, tok := range []string{"", e.vendor, e.maint, e.lone} {
				if resp, body := e.do("POST", "/v1/releases/"+rel.ID+"/pull-back", tok, ReviewRequest{Reason: "confirmed"}); resp.StatusCode/100 != 4 {
					t.Fatalf("pull-back with token %q: %d %s", tok, resp.StatusCode, body)
				}
			}
			if resp, body := e.do("POST", "/v1/releases/"+rel.ID+"/resume", e.admin, ReviewRequest{Reason: "reports were from a lab"}); resp.StatusCode != http.StatusOK {
				t.Fatalf("resume: %d %s", resp.StatusCode, body)
			}
			if resp, _ := e.check("usb:1d6b:0104", "0.9.0", "stable"); resp.StatusCode != http.StatusOK {
				t.Fatalf("resumed release not offered: %d", resp.StatusCode)
			}
			if resp, _ := e.do("POST", "/v1/products/demo-cam/maintainers", e.admin, GrantRequest{Name: "alice"}); resp.StatusCode != http.StatusCreated {
				t.Fatal(resp.StatusCode)
			}
			if resp, body := e.do("POST", "/v1/releases/"+rel.ID+"/pull-back", e.maint, ReviewRequest{Reason: "bricks rev B boards"}); resp.StatusCode != http.StatusOK {
				t.Fatalf("maintainer pull-back: %d %s", resp.StatusCode, body)
			}
			got, _ := e.svc.Get(ctx, rel.ID)
			if !got.PulledBack || got.Held || got.Channel != Testing {
				t.Fatalf("release after pull-back: %+v", got)
			}
			for _, ch := range []string{"stable", "testing"} {
				if resp, o := e.check("usb:1d6b:0104", "0.9.0", ch); resp.StatusCode == http.StatusOK && o.ReleaseID == rel.ID {
					t.Fatalf("pulled-back release still offered on %s", ch)
				}
			}
			_, body := e.do("GET", "/v1/products/demo-cam/overview", "", nil)
			if !strings.Contains(string(body), `"pulled_back":true`) {
				t.Fatalf("overview does not show the pull-back: %s", body)
			}
		})
		t.Run("the release's report stats count outcomes and top reasons", func(t *testing.T) {
			resp, body := e.do("GET", "/v1/releases/"+rel.ID+"/reports", "", nil)
			if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"success":5`) || !strings.Contains(string(body), `"failure":7`) ||
				!strings.Contains(string(body), `{"reason":"flash write error","count":14}`) {
				t.Fatalf("%d %s", resp.StatusCode, body)
			}
		})
	})
}

func TestReportsAreRateLimitedPerNetwork(t *testing.T) {
	e := newEnv(t, dbtest.SQLite(t), envOptions{reportsPerHour: 3})
	b, _ := e.firmware("1.0.0")
	rel := e.publish(PublishRequest{BuildID: b, Version: "1.0.0", Channel: Stable})
	for i := range 3 {
		if code, _ := e.sendReport(e.install(rel, "success", ""), fmt.Sprintf("192.0.2.%d", i)); code != http.StatusNoContent {
			t.Fatalf("report %d: %d", i, code)
		}
	}
	resp, _ := e.do("POST", "/v1/devices/reports", "", e.install(rel, "success", ""), "X-Forwarded-For", "192.0.2.200")
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("4th report from the network: %d, Retry-After %q; want 429", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if code, _ := e.sendReport(e.install(rel, "success", ""), "192.0.3.1"); code != http.StatusNoContent {
		t.Fatalf("another network was limited: %d", code)
	}
	e.clock.add(20 * 60e9) // a third of the hour refills one token
	if code, _ := e.sendReport(e.install(rel, "success", ""), "192.0.2.9"); code != http.StatusNoContent {
		t.Fatalf("after refill: %d", code)
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

func TestReplicasFollowEachOtherThroughTheEventLog(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		a := newEnv(t, d, envOptions{})
		other, err := New(context.Background(), Options{DB: d, Blobs: a.blobs, TUF: a.repo, Catalog: a.cat, Builds: a.farm, ReplicaID: "replica-b"})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := a.firmware("1.0.0")
		a.publish(PublishRequest{BuildID: b, Version: "1.0.0", Channel: Stable})
		if _, ok := other.index.Load().lookup("usb:1d6b:0104", "0.9.0", Stable, 0, time.Now); ok {
			t.Fatal("the other replica knew before polling")
		}
		if err := other.Poll(context.Background()); err != nil {
			t.Fatal(err)
		}
		if o, ok := other.index.Load().lookup("usb:1d6b:0104", "0.9.0", Stable, 0, time.Now); !ok || o.version != "1.0.0" {
			t.Fatalf("after poll: %+v", o)
		}
		if other.Generation() != a.svc.Generation() || other.IndexSeq() != a.svc.IndexSeq() {
			t.Fatalf("generations %d vs %d, events %d vs %d", other.Generation(), a.svc.Generation(), other.IndexSeq(), a.svc.IndexSeq())
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
		if !strings.Contains(string(body), `"id":"demo-cam"`) || !strings.Contains(string(body), `"total":1`) || !strings.Contains(string(body), `"vendor_name":"acme"`) {
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
	testenv.Eventually(t, 10*time.Second, func() error {
		if _, ok := other.index.Load().lookup("usb:1d6b:0104", "0.9.0", Stable, 0, time.Now); !ok {
			return errors.New("the running replica has not picked up the release")
		}
		return nil
	})
}

func TestDownloadsFromS3WithoutAPublicURLStreamThroughTheServer(t *testing.T) {
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
		resp, body := e.do("GET", p, "", nil)
		if resp.StatusCode != http.StatusOK || string(body) != string(fw) {
			t.Fatalf("%s: got %d (Location %q), %d bytes; want 200 with the firmware", p, resp.StatusCode, resp.Header.Get("Location"), len(body))
		}
	}
	t.Run("a resumed download gets the rest through the server", func(t *testing.T) {
		resp, body := e.do("GET", "/v1/releases/"+rel.ID+"/artifacts/"+a.Name, "", nil, "Range", "bytes=10-")
		if resp.StatusCode != http.StatusPartialContent || string(body) != string(fw[10:]) {
			t.Fatalf("got %d, %d bytes; want 206 with %d bytes", resp.StatusCode, len(body), len(fw)-10)
		}
	})
	t.Run("the device client installs", func(t *testing.T) {
		cfg := e.deviceConfig(t, "usb:1d6b:0104", true)
		res, err := device.Update(context.Background(), cfg, "0.1.0")
		if err != nil || !res.Updated || res.Version != "1.0.0" || res.ReportErr != nil {
			t.Fatalf("update: %+v %v", res, err)
		}
	})
}
