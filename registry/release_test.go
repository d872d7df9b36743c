package registry

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"path"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/theupdateframework/go-tuf/v2/metadata/config"
	"github.com/theupdateframework/go-tuf/v2/metadata/updater"

	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/dbtest"
	"github.com/afterlife-oss/afterlife/registry/device"
)

// tufClient runs go-tuf's own updater against the server, from a fresh
// cache, trusting the repository's first root.
func (e *env) tufClient() *updater.Updater {
	e.t.Helper()
	resp, root := e.do("GET", "/tuf/1.root.json", "", nil)
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("root: %d %s", resp.StatusCode, root)
	}
	cfg, err := config.New(e.srv.URL+"/tuf", root)
	if err != nil {
		e.t.Fatal(err)
	}
	cfg.LocalMetadataDir = e.t.TempDir()
	cfg.LocalTargetsDir = e.t.TempDir()
	cfg.RemoteTargetsURL = e.srv.URL + "/tuf/targets"
	up, err := updater.New(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := up.Refresh(); err != nil {
		e.t.Fatalf("tuf refresh: %v", err)
	}
	return up
}

func (e *env) check(id, version, channel string, hdr ...string) (*http.Response, device.Offer) {
	e.t.Helper()
	q := url.Values{"id": {id}, "version": {version}}
	if channel != "" {
		q.Set("channel", channel)
	}
	resp, body := e.do("GET", "/v1/devices/updates?"+q.Encode(), "", nil, hdr...)
	var o device.Offer
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(body, &o); err != nil {
			e.t.Fatalf("offer %s: %v", body, err)
		}
	}
	return resp, o
}

func TestReleaseLifecycle(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d, envOptions{})
		b1, fw1 := e.firmware("1.0.0")
		r1 := e.publish(PublishRequest{BuildID: b1, Version: "1.0.0", Channel: Stable, Notes: "first open firmware"})
		b2, _ := e.firmware("1.1.0")
		r2 := e.publish(PublishRequest{BuildID: b2, Version: "1.1.0", Channel: Testing, Notes: "new sensor driver"})
		b3, _ := e.firmware("2.0.0")
		r3 := e.publish(PublishRequest{BuildID: b3, Version: "2.0.0", Channel: Testing, MinVersion: "1.1.0"})

		t.Run("go-tuf's updater verifies and downloads a published target from the registry", func(t *testing.T) {
			up := e.tufClient()
			target := r1.Offered().Target
			info, err := up.GetTargetInfo(target)
			if err != nil {
				t.Fatalf("target %s not in signed metadata: %v", target, err)
			}
			_, data, err := up.DownloadTarget(info, path.Join(t.TempDir(), "fw.bin"), "")
			if err != nil {
				t.Fatal(err)
			}
			if string(data) != string(fw1) {
				t.Fatal("downloaded target differs from the build output")
			}
			var custom map[string]any
			json.Unmarshal(*info.Custom, &custom)
			if custom["release_id"] != r1.ID || custom["channel"] != Stable {
				t.Fatalf("signed custom fields = %v", custom)
			}
		})

		t.Run("the update check offers the newest release of the device's channel", func(t *testing.T) {
			for _, tc := range []struct {
				name, id, current, channel, want string
			}{
				{"a stable device gets the newest stable release", "usb:1d6b:0104", "0.9.0", "stable", "1.0.0"},
				{"no channel means stable", "usb:1d6b:0104", "0.9.0", "", "1.0.0"},
				{"a testing device gets the newest release it may update to", "usb:1d6b:0104", "1.0.0", "testing", "1.1.0"},
				{"min_version lets a device at it take the major release", "dt:acme,cam200", "1.1.0", "testing", "2.0.0"},
				{"min_version makes an older device take a stepping stone", "usb:1d6b:0104", "0.9.0", "testing", "1.1.0"},
				{"a device id's scheme matches in any case", "USB:1d6b:0104", "0.9.0", "stable", "1.0.0"},
			} {
				t.Run(tc.name, func(t *testing.T) {
					resp, o := e.check(tc.id, tc.current, tc.channel)
					if resp.StatusCode != http.StatusOK || o.Version != tc.want {
						t.Fatalf("got %d %+v, want version %s", resp.StatusCode, o, tc.want)
					}
					if o.Product != "demo-cam" || !o.Community || o.RiskNotes == "" || o.Target.Hashes["sha256"] == "" || o.Target.Length == 0 {
						t.Fatalf("offer misses fields: %+v", o)
					}
				})
			}
		})

		t.Run("a device that is current, or unknown, gets 204", func(t *testing.T) {
			for _, q := range [][3]string{{"usb:1d6b:0104", "1.0.0", "stable"}, {"usb:1d6b:0104", "2.0.0", "testing"}, {"usb:ffff:0000", "0.1", "stable"}} {
				if resp, _ := e.check(q[0], q[1], q[2]); resp.StatusCode != http.StatusNoContent {
					t.Fatalf("%v: got %d, want 204", q, resp.StatusCode)
				}
			}
		})

		t.Run("a bad query is refused", func(t *testing.T) {
			for _, q := range [][3]string{{"", "1.0", "stable"}, {"usb:1d6b:0104", "latest", "stable"}, {"usb:1d6b:0104", "1.0", "nightly"}} {
				if resp, _ := e.check(q[0], q[1], q[2]); resp.StatusCode != http.StatusBadRequest {
					t.Fatalf("%v: got %d, want 400", q, resp.StatusCode)
				}
			}
		})

		t.Run("an offer is cacheable and revalidates to 304", func(t *testing.T) {
			resp, _ := e.check("usb:1d6b:0104", "0.9.0", "stable")
			etag := resp.Header.Get("ETag")
			if etag == "" || !strings.Contains(resp.Header.Get("Cache-Control"), "max-age=") {
				t.Fatalf("headers: %v", resp.Header)
			}
			if resp, _ := e.check("usb:1d6b:0104", "0.9.0", "stable", "If-None-Match", etag); resp.StatusCode != http.StatusNotModified {
				t.Fatalf("revalidation: %d, want 304", resp.StatusCode)
			}
			if resp, _ := e.check("usb:1d6b:0104", "0.9.0", "stable", "If-None-Match", `"other"`); resp.StatusCode != http.StatusOK {
				t.Fatalf("stale etag: %d, want 200", resp.StatusCode)
			}
		})

		t.Run("promotion moves a testing release to stable in one call", func(t *testing.T) {
			resp, body := e.do("POST", "/v1/releases/"+r2.ID+"/promote", e.admin, nil)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("promote: %d %s", resp.StatusCode, body)
			}
			if _, o := e.check("usb:1d6b:0104", "1.0.0", "stable"); o.Version != "1.1.0" || o.Channel != Stable {
				t.Fatalf("stable offer after promotion: %+v", o)
			}
			if resp, _ := e.do("POST", "/v1/releases/"+r2.ID+"/promote", e.admin, nil); resp.StatusCode != http.StatusConflict {
				t.Fatalf("second promote: %d, want 409", resp.StatusCode)
			}
			info, err := e.tufClient().GetTargetInfo(r2.Offered().Target)
			if err != nil {
				t.Fatal(err)
			}
			var custom map[string]any
			json.Unmarshal(*info.Custom, &custom)
			if custom["channel"] != Stable {
				t.Fatalf("signed channel after promotion = %v", custom["channel"])
			}
		})

		t.Run("a yanked release is no longer offered and its TUF target is signed as yanked", func(t *testing.T) {
			resp, body := e.do("POST", "/v1/releases/"+r3.ID+"/yank", e.admin, YankRequest{Reason: "bricks rev B boards"})
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("yank: %d %s", resp.StatusCode, body)
			}
			if resp, o := e.check("usb:1d6b:0104", "1.1.0", "testing"); resp.StatusCode != http.StatusNoContent {
				t.Fatalf("yanked release still offered: %+v", o)
			}
			info, err := e.tufClient().GetTargetInfo(r3.Offered().Target)
			if err != nil {
				t.Fatalf("the yanked target left the signed metadata: %v", err)
			}
			var custom map[string]any
			json.Unmarshal(*info.Custom, &custom)
			if custom["yanked"] != true || custom["yank_reason"] != "bricks rev B boards" {
				t.Fatalf("the yanked target's signed fields: %v", custom)
			}
			a := r3.Offered()
			resp, _ = e.do("GET", "/tuf/targets/demo-cam/2.0.0/"+a.sha256Hex()+"."+a.Name, "", nil)
			if resp.StatusCode != http.StatusNotFound {
				t.Fatalf("yanked target file: %d, want 404", resp.StatusCode)
			}
			got, err := e.svc.Get(context.Background(), r3.ID)
			if err != nil || !got.Yanked || got.YankReason != "bricks rev B boards" {
				t.Fatalf("yanked release kept for audit: %+v %v", got, err)
			}
		})

		t.Run("the product's events record every step", func(t *testing.T) {
			resp, body := e.do("GET", "/v1/products/demo-cam/events", "", nil)
			if resp.StatusCode != http.StatusOK {
				t.Fatal(resp.StatusCode)
			}
			for _, kind := range []string{`"published"`, `"promoted"`, `"yanked"`} {
				if !strings.Contains(string(body), kind) {
					t.Fatalf("events miss %s: %s", kind, body)
				}
			}
		})

		t.Run("a version is never reused", func(t *testing.T) {
			b, _ := e.firmware("2.0.0-again")
			resp, _ := e.do("POST", "/v1/releases", e.admin, PublishRequest{BuildID: b, Product: "demo-cam", Version: "2.0.0"})
			if resp.StatusCode != http.StatusConflict {
				t.Fatalf("republish of a yanked version: %d, want 409", resp.StatusCode)
			}
		})
	})
}

func TestPublishingRules(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d, envOptions{})
		build, _ := e.firmware("1.0.0")
		req := func(mod func(*PublishRequest)) PublishRequest {
			r := PublishRequest{BuildID: build, Product: "demo-cam", Version: "1.0.0", Channel: Testing}
			if mod != nil {
				mod(&r)
			}
			return r
		}
		for _, tc := range []struct {
			name  string
			token string
			req   PublishRequest
			want  int
		}{
			{"an anonymous caller may not publish", "", req(nil), http.StatusUnauthorized},
			{"a vendor may not publish", e.vendor, req(nil), http.StatusForbidden},
			{"a maintainer not granted the product may not publish", e.maint, req(nil), http.StatusForbidden},
			{"a build without a reproducible verdict is refused", e.admin, req(func(r *PublishRequest) { r.BuildID = "bld_unknown" }), http.StatusConflict},
			{"an unknown product is refused", e.admin, req(func(r *PublishRequest) { r.Product = "nope" }), http.StatusNotFound},
			{"a bad version is refused", e.admin, req(func(r *PublishRequest) { r.Version = "1.0/../x" }), http.StatusBadRequest},
			{"a min_version not older than the version is refused", e.admin, req(func(r *PublishRequest) { r.MinVersion = "1.0.0" }), http.StatusBadRequest},
			{"an unknown channel is refused", e.admin, req(func(r *PublishRequest) { r.Channel = "beta" }), http.StatusBadRequest},
		} {
			t.Run(tc.name, func(t *testing.T) {
				if resp, body := e.do("POST", "/v1/releases", tc.token, tc.req); resp.StatusCode != tc.want {
					t.Fatalf("got %d %s, want %d", resp.StatusCode, body, tc.want)
				}
			})
		}
		t.Run("an output missing from the blob store is refused", func(t *testing.T) {
			id := e.build(map[string][]byte{"fw.bin": []byte("x")})
			e.farm.builds[id].Outputs[0].Digest = "sha256:" + strings.Repeat("ab", 32)
			if resp, body := e.do("POST", "/v1/releases", e.admin, req(func(r *PublishRequest) { r.BuildID = id })); resp.StatusCode != http.StatusConflict {
				t.Fatalf("got %d %s, want 409", resp.StatusCode, body)
			}
		})
		t.Run("a maintainer granted the product by org may publish and promote", func(t *testing.T) {
			if resp, body := e.do("POST", "/v1/products/demo-cam/maintainers", e.admin, GrantRequest{Org: "openfw"}); resp.StatusCode != http.StatusCreated {
				t.Fatalf("grant: %d %s", resp.StatusCode, body)
			}
			resp, body := e.do("POST", "/v1/releases", e.maint, req(nil))
			if resp.StatusCode != http.StatusCreated {
				t.Fatalf("publish: %d %s", resp.StatusCode, body)
			}
			var rel Release
			json.Unmarshal(body, &rel)
			if rel.PublishedBy != "maintainer:alice" || rel.Agreeing != 2 || rel.VerdictURL == "" || len(rel.Artifacts) != 2 {
				t.Fatalf("release: %+v", rel)
			}
			if resp, body := e.do("POST", "/v1/releases/"+rel.ID+"/promote", e.maint, nil); resp.StatusCode != http.StatusOK {
				t.Fatalf("promote: %d %s", resp.StatusCode, body)
			}
		})
		t.Run("a publication without a version takes the recipe's", func(t *testing.T) {
			id := e.build(map[string][]byte{"fw.bin": []byte("recipe-versioned")})
			b := e.farm.builds[id]
			b.RecipeVersion = "1.4.2"
			e.farm.builds[id] = b
			resp, body := e.do("POST", "/v1/releases", e.admin, req(func(r *PublishRequest) { r.BuildID, r.Version = id, "" }))
			if resp.StatusCode != http.StatusCreated {
				t.Fatalf("publish: %d %s", resp.StatusCode, body)
			}
			var rel Release
			json.Unmarshal(body, &rel)
			if rel.Version != "1.4.2" {
				t.Fatalf("release version %q, want the recipe's 1.4.2", rel.Version)
			}
			b.RecipeVersion = "not a version/"
			e.farm.builds[id] = b
			if resp, body := e.do("POST", "/v1/releases", e.admin, req(func(r *PublishRequest) { r.BuildID, r.Version = id, "" })); resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("a recipe version that is no release version: %d %s, want 400", resp.StatusCode, body)
			}
		})
	})
}

func TestConcurrentPublishesOfOneVersionLeaveOneSignedRelease(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d, envOptions{})
		b, fw := e.firmware("3.0.0")
		const racers = 4
		codes := make(chan int, racers)
		var wg sync.WaitGroup
		for i := 0; i < racers; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, _ := e.do("POST", "/v1/releases", e.admin, PublishRequest{BuildID: b, Product: "demo-cam", Version: "3.0.0", Channel: Stable})
				codes <- resp.StatusCode
			}()
		}
		wg.Wait()
		close(codes)
		created := 0
		for c := range codes {
			switch c {
			case http.StatusCreated:
				created++
			case http.StatusConflict:
			default:
				t.Fatalf("a racing publish answered %d", c)
			}
		}
		if created != 1 {
			t.Fatalf("%d publishes of 3.0.0 succeeded, want exactly 1", created)
		}
		rels, err := e.svc.List(context.Background(), "demo-cam")
		if err != nil || len(rels) != 1 {
			t.Fatalf("releases: %v %v", rels, err)
		}
		// The winner's target is still signed: a losing publish's undo must
		// not remove it.
		up := e.tufClient()
		info, err := up.GetTargetInfo(rels[0].Offered().Target)
		if err != nil {
			t.Fatalf("the published target is missing from the signed metadata: %v", err)
		}
		_, data, err := up.DownloadTarget(info, path.Join(t.TempDir(), "fw.bin"), "")
		if err != nil || string(data) != string(fw) {
			t.Fatalf("download of the published target: %v", err)
		}
	})
}

func TestArtifactDigestsListEveryReleasedBlobOnce(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d, envOptions{})
		b1, _ := e.firmware("1.0.0")
		r1 := e.publish(PublishRequest{BuildID: b1, Version: "1.0.0", Channel: Stable})
		b2, _ := e.firmware("1.1.0")
		r2 := e.publish(PublishRequest{BuildID: b2, Version: "1.1.0", Channel: Testing})
		want := map[string]bool{}
		for _, r := range []Release{r1, r2} {
			for _, a := range r.Artifacts {
				want[a.Digest] = true
			}
		}
		got, err := e.svc.ArtifactDigests(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) || !sort.StringsAreSorted(got) {
			t.Fatalf("ArtifactDigests = %v, want the %d digests %v sorted", got, len(want), want)
		}
		for _, d := range got {
			if !want[d] {
				t.Errorf("%s is not an artifact", d)
			}
		}
	})
}
