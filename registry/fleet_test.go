package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/afterlife-oss/afterlife/internal/blob"
	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/dbtest"
	"github.com/afterlife-oss/afterlife/internal/principal"
	"github.com/afterlife-oss/afterlife/registry/device"
)

// The fleet tests: yanks that reach devices, phased rollouts and delta
// updates, each on the real registry (its HTTP API and TUF repository,
// SQLite and PostgreSQL) with the real device client.

// mirrorTUF copies what a static mirror of the registry holds: every
// metadata file the current timestamp reaches, every root version, and the
// files of the given artifacts. It returns a plain file server of it.
func (e *env) mirrorTUF(arts ...Artifact) *httptest.Server {
	e.t.Helper()
	dir := e.t.TempDir()
	get := func(name string) []byte {
		resp, body := e.do("GET", "/tuf/"+name, "", nil)
		if resp.StatusCode != http.StatusOK {
			e.t.Fatalf("mirror %s: %d", name, resp.StatusCode)
		}
		dst := filepath.Join(dir, "tuf", filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			e.t.Fatal(err)
		}
		if err := os.WriteFile(dst, body, 0o644); err != nil {
			e.t.Fatal(err)
		}
		return body
	}
	for v := 1; ; v++ {
		if resp, _ := e.do("GET", fmt.Sprintf("/tuf/%d.root.json", v), "", nil); resp.StatusCode != http.StatusOK {
			break
		}
		get(fmt.Sprintf("%d.root.json", v))
	}
	var meta struct {
		Signed struct {
			Meta map[string]struct {
				Version int `json:"version"`
			} `json:"meta"`
		} `json:"signed"`
	}
	if err := json.Unmarshal(get("timestamp.json"), &meta); err != nil {
		e.t.Fatal(err)
	}
	if err := json.Unmarshal(get(fmt.Sprintf("%d.snapshot.json", meta.Signed.Meta["snapshot.json"].Version)), &meta); err != nil {
		e.t.Fatal(err)
	}
	for name, m := range meta.Signed.Meta {
		get(fmt.Sprintf("%d.%s", m.Version, name))
	}
	for _, a := range arts {
		get("targets/" + path.Dir(a.Target) + "/" + a.sha256Hex() + "." + path.Base(a.Target))
	}
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	e.t.Cleanup(srv.Close)
	return srv
}

// admin is the test's admin principal, for calls that skip HTTP.
var admin = principal.Principal{Role: principal.Admin, Name: "root"}

func mustUpdate(t *testing.T, cfg device.Config, want string) *device.Result {
	t.Helper()
	res, err := device.Update(context.Background(), cfg, "")
	if err != nil {
		t.Fatalf("update: %v (want %s)", err, want)
	}
	if v, _ := device.Current(cfg); v != want {
		t.Fatalf("the device runs %q after %+v, want %s", v, res, want)
	}
	return res
}

func TestAYankedReleaseMovesDevicesOn(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		e := newEnv(t, d, envOptions{})
		b, _ := e.firmware("1.0.0")
		good := e.publish(PublishRequest{BuildID: b, Version: "1.0.0", Channel: Stable})
		b, _ = e.firmware("1.1.0")
		bad := e.publish(PublishRequest{BuildID: b, Version: "1.1.0", Channel: Stable})

		online := e.deviceConfig(t, "usb:1d6b:0104", true)
		mustUpdate(t, online, "1.1.0")
		mirrored := e.deviceConfig(t, "usb:1d6b:0104", true)
		mirrored.Product = "demo-cam"
		mustUpdate(t, mirrored, "1.1.0")
		if st, err := device.InstalledYank(ctx, online); err != nil || st == nil || st.Yanked {
			t.Fatalf("before the yank: %+v %v, want not yanked", st, err)
		}

		const reason = "bricks cameras of hardware revision B"
		resp, body := e.do("POST", "/v1/releases/"+bad.ID+"/yank", e.maint, YankRequest{Reason: reason})
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("a maintainer not granted the product yanked it: %d %s", resp.StatusCode, body)
		}
		if resp, body = e.do("POST", "/v1/releases/"+bad.ID+"/yank", e.admin, YankRequest{Reason: reason}); resp.StatusCode != http.StatusOK {
			t.Fatalf("yank: %d %s", resp.StatusCode, body)
		}

		t.Run("the yank is signed: the target stays, marked, with its reason, and so does the release list", func(t *testing.T) {
			listed, err := e.repo.Listed(ctx, []string{bad.Offered().Target, good.Offered().Target, device.ReleaseListPath("demo-cam")})
			if err != nil {
				t.Fatal(err)
			}
			y := listed[bad.Offered().Target]
			if y.Custom["yanked"] != true || y.Custom["yank_reason"] != reason {
				t.Fatalf("yanked target's signed fields: %v", y.Custom)
			}
			rb, _ := json.Marshal(listed[good.Offered().Target].Custom["rollback_from_yanked"])
			var from []device.YankedFrom
			if err := json.Unmarshal(rb, &from); err != nil || len(from) != 1 || from[0] != (device.YankedFrom{Version: "1.1.0", Reason: reason}) {
				t.Fatalf("1.0.0 carries rollback_from_yanked %s, want the signed permission from 1.1.0", rb)
			}
			list, _ := json.Marshal(listed[device.ReleaseListPath("demo-cam")].Custom)
			var rl device.ReleaseList
			if err := json.Unmarshal(list, &rl); err != nil || len(rl.Releases) != 1 || rl.Releases[0].Version != "1.0.0" ||
				len(rl.Yanked) != 1 || rl.Yanked[0].Version != "1.1.0" || rl.Yanked[0].Reason != reason {
				t.Fatalf("release list: %s (%v)", list, err)
			}
		})
		t.Run("a device learns of the yank with its reason", func(t *testing.T) {
			st, err := device.InstalledYank(ctx, online)
			if err != nil || st == nil || !st.Yanked || st.Reason != reason || st.Version != "1.1.0" {
				t.Fatalf("InstalledYank: %+v %v", st, err)
			}
		})
		t.Run("it is offered the newest release its channel still has, older, through the signed rollback", func(t *testing.T) {
			res := mustUpdate(t, online, "1.0.0")
			if res.Yanked == nil || res.Yanked.Reason != reason {
				t.Fatalf("the update did not say the release it left was yanked: %+v", res)
			}
			if res.ReportErr != nil {
				t.Fatalf("report: %v", res.ReportErr)
			}
		})
		t.Run("a device reading only a static copy of the metadata moves on too", func(t *testing.T) {
			static := e.mirrorTUF(good.Offered())
			mirrored.Registry = static.URL
			if st, err := device.InstalledYank(ctx, mirrored); err != nil || st == nil || !st.Yanked || st.Reason != reason {
				t.Fatalf("InstalledYank from the mirror: %+v %v", st, err)
			}
			res := mustUpdate(t, mirrored, "1.0.0")
			if res.Yanked == nil || res.Yanked.Reason != reason {
				t.Fatalf("the update from the mirror did not name the yank: %+v", res)
			}
		})
		t.Run("no other downgrade is allowed: a device on 1.0.0 stays there", func(t *testing.T) {
			res := mustUpdate(t, online, "1.0.0")
			if res.Updated || res.Yanked != nil {
				t.Fatalf("%+v", res)
			}
			resp, _ := e.do("GET", "/v1/devices/updates?id=usb:1d6b:0104&version=1.0.0&channel=stable", "", nil)
			if resp.StatusCode != http.StatusNoContent {
				t.Fatalf("a device on 1.0.0 was offered something: %d", resp.StatusCode)
			}
		})
		t.Run("a release published later below the yanked one takes its devices back instead", func(t *testing.T) {
			b, _ := e.firmware("1.0.5")
			fix := e.publish(PublishRequest{BuildID: b, Version: "1.0.5", Channel: Stable})
			listed, err := e.repo.Listed(ctx, []string{fix.Offered().Target, good.Offered().Target})
			if err != nil {
				t.Fatal(err)
			}
			if listed[fix.Offered().Target].Custom["rollback_from_yanked"] == nil || listed[good.Offered().Target].Custom["rollback_from_yanked"] != nil {
				t.Fatalf("after 1.0.5: 1.0.5 signs %v, 1.0.0 signs %v; want the permission moved to 1.0.5",
					listed[fix.Offered().Target].Custom["rollback_from_yanked"], listed[good.Offered().Target].Custom["rollback_from_yanked"])
			}
			resp, body := e.do("GET", "/v1/devices/updates?id=usb:1d6b:0104&version=1.1.0&channel=stable", "", nil)
			if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"version":"1.0.5"`) {
				t.Fatalf("a device on the yanked 1.1.0 was offered %d %s, want 1.0.5", resp.StatusCode, body)
			}
			mustUpdate(t, online, "1.0.5")
		})
		t.Run("the next release is an ordinary update again", func(t *testing.T) {
			b, _ := e.firmware("1.2.0")
			e.publish(PublishRequest{BuildID: b, Version: "1.2.0", Channel: Stable})
			mustUpdate(t, online, "1.2.0")
		})
		t.Run("the overview keeps the yanked release with its reason", func(t *testing.T) {
			ov, err := e.svc.ProductOverview(ctx, "demo-cam")
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, r := range ov.Releases {
				found = found || (r.Version == "1.1.0" && r.Yanked && r.YankReason == reason)
			}
			if !found {
				t.Fatal("the overview lost the yanked release")
			}
		})
	})
}

// binomialTolerance is how far from n·p a count of n devices, each in
// with probability p, may fall in the rollout test: five standard
// deviations, sqrt(n·p·(1-p)), which a correct bucket hash leaves once in
// about 1.7 million runs.
func binomialTolerance(n int, p float64) int {
	return int(math.Ceil(5 * math.Sqrt(float64(n)*p*(1-p))))
}

func TestARolloutReachesItsShareAndHaltsOnFailures(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		e := newEnv(t, d, envOptions{reportsPerHour: 2000})
		b, _ := e.firmware("1.0.0")
		e.publish(PublishRequest{BuildID: b, Version: "1.0.0", Channel: Stable})
		b, _ = e.firmware("1.1.0")
		stages, err := device.ParseStages("10,50,100", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		rel := e.publish(PublishRequest{BuildID: b, Version: "1.1.0", Channel: Stable, Rollout: stages})
		if rel.Rollout == nil || rel.Rollout.Stage != 1 || rel.Rollout.Percent != 10 {
			t.Fatalf("published rollout: %+v", rel.Rollout)
		}

		const installs = 1000
		ids := make([]string, installs)
		for i := range ids {
			ids[i] = newInstallID(t)
		}
		// offered counts the simulated installs of the model, all on
		// 1.0.0, that the update check offers 1.1.0.
		offered := func() int {
			n := 0
			for _, id := range ids {
				resp, body := e.do("GET", fmt.Sprintf("/v1/devices/updates?id=usb:1d6b:0104&version=1.0.0&channel=stable&bucket=%d", device.Bucket(id)), "", nil)
				switch {
				case resp.StatusCode == http.StatusOK && bytes.Contains(body, []byte(`"version":"1.1.0"`)):
					n++
				case resp.StatusCode != http.StatusNoContent:
					t.Fatalf("update check: %d %s", resp.StatusCode, body)
				}
			}
			return n
		}
		within := func(what string, got, wantPercent int) {
			t.Helper()
			p := float64(wantPercent) / 100
			tol := binomialTolerance(installs, p)
			if want := int(installs * p); got < want-tol || got > want+tol {
				t.Fatalf("%s: %d of %d installs were offered the release, want %d ± %d", what, got, installs, want, tol)
			}
			t.Logf("%s: %d of %d installs offered the release (want %d ± %d)", what, got, installs, int(installs*p), tol)
		}
		within("stage 1, 10%", offered(), 10)

		t.Run("a device follows the stage through the API and from the signed metadata alone", func(t *testing.T) {
			var in, out device.Config
			for in.StateDir == "" || out.StateDir == "" {
				cfg := e.deviceConfig(t, "usb:1d6b:0104", true)
				cfg.Product = "demo-cam"
				raw, err := os.ReadFile(filepath.Join(cfg.StateDir, "config.json"))
				if err != nil {
					t.Fatal(err)
				}
				var st struct {
					InstallID string `json:"install_id"`
				}
				if err := json.Unmarshal(raw, &st); err != nil {
					t.Fatal(err)
				}
				if device.Bucket(st.InstallID) < 10 {
					in = cfg
				} else {
					out = cfg
				}
			}
			for _, fromMetadata := range []bool{false, true} {
				in.FromMetadata, out.FromMetadata = fromMetadata, fromMetadata
				in.InstallDir, out.InstallDir = t.TempDir(), t.TempDir()
				mustUpdate(t, in, "1.1.0")
				mustUpdate(t, out, "1.0.0")
			}
		})

		e.clock.add(time.Hour + time.Minute)
		within("stage 2, 50%", offered(), 50)

		t.Run("a burst of failure reports with receipts halts it", func(t *testing.T) {
			for i, from := range []string{"198.51.100.7", "203.0.113.9", "192.0.2.44"} {
				for range 2 {
					if code, body := e.sendReport(e.install(rel, device.OutcomeFailure, "boot loop"), from); code != http.StatusNoContent {
						t.Fatalf("report %d: %d %s", i, code, body)
					}
				}
			}
			got, err := e.svc.Get(ctx, rel.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.Rollout.State != device.RolloutHalted || got.Held {
				t.Fatalf("after the failures: rollout %+v, held %v; want the rollout halted", got.Rollout, got.Held)
			}
			if n := offered(); n != 0 {
				t.Fatalf("a halted rollout was offered to %d installs", n)
			}
			evs, err := e.svc.Events(ctx, "demo-cam")
			if err != nil || evs[len(evs)-1].Kind != "rollout_halted" || !strings.Contains(evs[len(evs)-1].Detail, "counted installs failed") {
				t.Fatalf("last event: %+v %v", evs[len(evs)-1], err)
			}
		})
		t.Run("a maintainer of the product resumes it where it stopped, and aborts it", func(t *testing.T) {
			if _, err := e.svc.GrantMaintainer(ctx, admin, "demo-cam", "", "openfw"); err != nil {
				t.Fatal(err)
			}
			resp, body := e.do("POST", "/v1/releases/"+rel.ID+"/rollout/resume", e.lone, ReviewRequest{Reason: "fixed the boot loader"})
			if resp.StatusCode != http.StatusForbidden {
				t.Fatalf("a maintainer without the grant resumed: %d %s", resp.StatusCode, body)
			}
			e.clock.add(24 * time.Hour) // halted: the stage does not advance
			if resp, body = e.do("POST", "/v1/releases/"+rel.ID+"/rollout/resume", e.maint, ReviewRequest{Reason: "fixed the boot loader"}); resp.StatusCode != http.StatusOK {
				t.Fatalf("resume: %d %s", resp.StatusCode, body)
			}
			var got Release
			if err := json.Unmarshal(body, &got); err != nil || got.Rollout.State != device.RolloutActive || got.Rollout.Stage != 2 {
				t.Fatalf("resumed: %+v %v", got.Rollout, err)
			}
			within("stage 2 again after resuming", offered(), 50)
			if resp, body = e.do("POST", "/v1/releases/"+rel.ID+"/rollout/abort", e.maint, ReviewRequest{Reason: "a worse bug"}); resp.StatusCode != http.StatusOK {
				t.Fatalf("abort: %d %s", resp.StatusCode, body)
			}
			if n := offered(); n != 0 {
				t.Fatalf("an aborted rollout was offered to %d installs", n)
			}
			kinds := []string{}
			evs, _ := e.svc.Events(ctx, "demo-cam")
			for _, ev := range evs {
				if strings.HasPrefix(ev.Kind, "rollout_") {
					kinds = append(kinds, ev.Kind)
				}
			}
			if strings.Join(kinds, " ") != "rollout_halted rollout_resumed rollout_aborted" {
				t.Fatalf("rollout events: %v", kinds)
			}
		})
		t.Run("a new rollout starts over and reaches everyone at its last stage", func(t *testing.T) {
			st, _ := device.ParseStages("1,100", time.Hour)
			resp, body := e.do("POST", "/v1/releases/"+rel.ID+"/rollout", e.maint, RolloutRequest{Stages: st})
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("start: %d %s", resp.StatusCode, body)
			}
			within("stage 1, 1%", offered(), 1)
			e.clock.add(time.Hour)
			if n := offered(); n != installs {
				t.Fatalf("at 100%%, %d of %d installs were offered it", n, installs)
			}
		})
	})
}

// bigFirmware is an image whose versions differ in a few places, as two
// builds of one firmware do.
func bigFirmware(version string) []byte {
	var b bytes.Buffer
	for i := range 5_000 {
		fmt.Fprintf(&b, "block %06d of the demo camera firmware, built reproducibly\n", i*7919%5_000)
	}
	img := b.Bytes()
	copy(img[1000:], "version "+version)
	copy(img[len(img)/2:], "feature table of "+version)
	return img
}

func TestADeltaUpdateInstallsAndACorruptDeltaFallsBackToTheFullImage(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		e := newEnv(t, d, envOptions{})
		publish := func(v string) Release {
			return e.publish(PublishRequest{BuildID: e.build(map[string][]byte{"fw.bin": bigFirmware(v)}), Version: v, Channel: Stable})
		}
		publish("1.0.0")
		first := e.deviceConfig(t, "usb:1d6b:0104", true)
		second := e.deviceConfig(t, "usb:1d6b:0104", true)
		tampered := e.deviceConfig(t, "usb:1d6b:0104", true)
		for _, cfg := range []device.Config{first, second, tampered} {
			mustUpdate(t, cfg, "1.0.0")
		}
		publish("1.1.0")
		publish("1.2.0")
		rel := publish("1.3.0")

		var deltas []Artifact
		for _, a := range rel.Artifacts {
			if a.Kind == "delta" {
				deltas = append(deltas, a)
			}
		}
		if len(deltas) != 3 {
			t.Fatalf("1.3.0 has %d deltas, want one from each of the last three releases: %+v", len(deltas), rel.Artifacts)
		}
		full := rel.Offered()
		var from100 Artifact
		for _, a := range deltas {
			if a.Delta == nil || a.Delta.ResultSHA256 != full.sha256Hex() || a.Delta.ResultLength != full.Size || a.Size*10 > full.Size {
				t.Fatalf("delta %+v (full image %d bytes)", a, full.Size)
			}
			if a.Delta.SourceVersion == "1.0.0" {
				from100 = a
			}
		}
		t.Logf("delta from 1.0.0: %d bytes for a %d-byte image (%.1f%% saved)", from100.Size, full.Size, 100-100*float64(from100.Size)/float64(full.Size))

		t.Run("a device whose slot holds the source installs from the delta", func(t *testing.T) {
			res := mustUpdate(t, first, "1.3.0")
			if !res.Delta || res.SHA256 != full.sha256Hex() || res.ReportErr != nil {
				t.Fatalf("%+v", res)
			}
		})
		t.Run("a device whose slot does not hold the source downloads the full image", func(t *testing.T) {
			slot, err := os.Readlink(filepath.Join(tampered.InstallDir, "current"))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(tampered.InstallDir, filepath.Base(slot), "fw.bin"), []byte("changed on the device"), 0o644); err != nil {
				t.Fatal(err)
			}
			if res := mustUpdate(t, tampered, "1.3.0"); res.Delta {
				t.Fatalf("used a delta against a slot that is not its source: %+v", res)
			}
		})
		t.Run("a corrupted delta falls back to the full image", func(t *testing.T) {
			p := e.blobs.(blob.Filer).Path(blob.Digest(from100.Digest))
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			b[len(b)/2] ^= 0xff
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
			res := mustUpdate(t, second, "1.3.0")
			if res.Delta || res.SHA256 != full.sha256Hex() || res.ReportErr != nil {
				t.Fatalf("%+v", res)
			}
			st, err := e.svc.Stats(ctx, rel.ID)
			if err != nil || st.Success != 3 || st.Failure != 0 {
				t.Fatalf("reports: %+v %v; want three successes", st, err)
			}
		})
	})
}

func TestRollbacksFromYankedVersionsGoToTheNewestReleaseTheChannelOffers(t *testing.T) {
	rel := func(v, ch string, mod ...func(*Release)) Release {
		r := Release{ID: "rel_" + v, Version: v, Channel: ch}
		for _, m := range mod {
			m(&r)
		}
		return r
	}
	yanked := func(r *Release) { r.Yanked, r.YankReason = true, "broken" }
	from := func(v ...string) func(*Release) {
		return func(r *Release) {
			for _, x := range v {
				r.RollbackFrom = append(r.RollbackFrom, device.YankedFrom{Version: x, Reason: "broken"})
			}
		}
	}
	for _, tc := range []struct {
		name string
		rels []Release
		want map[string]string // release id → the versions it may be reached from, joined
	}{
		{"a yanked newest stable release sends its devices back to the stable release before it",
			[]Release{rel("1.0.0", Stable), rel("1.1.0", Stable, yanked)}, map[string]string{"rel_1.0.0": "1.1.0"}},
		{"a yanked release with a newer one needs no rollback",
			[]Release{rel("1.0.0", Stable), rel("1.1.0", Stable, yanked), rel("1.2.0", Stable)}, map[string]string{}},
		{"testing devices go back to the newest release of either channel",
			[]Release{rel("1.0.0", Stable), rel("1.0.5", Testing), rel("1.1.0", Stable, yanked)},
			map[string]string{"rel_1.0.0": "1.1.0", "rel_1.0.5": "1.1.0"}},
		{"a yanked testing release sends only testing devices back",
			[]Release{rel("1.0.0", Stable), rel("1.0.5", Testing), rel("1.1.0", Testing, yanked)}, map[string]string{"rel_1.0.5": "1.1.0"}},
		{"pulled-back and held releases are passed over",
			[]Release{rel("0.9.0", Stable), rel("1.0.0", Stable), rel("1.0.3", Stable, func(r *Release) { r.PulledBack = true }),
				rel("1.0.4", Stable, func(r *Release) { r.Held = true }), rel("1.1.0", Stable, yanked)},
			map[string]string{"rel_1.0.0": "1.1.0"}},
		{"a permission no longer needed is withdrawn",
			[]Release{rel("1.0.0", Stable, from("1.1.0")), rel("1.1.0", Stable, yanked), rel("1.2.0", Stable)}, map[string]string{"rel_1.0.0": ""}},
		{"permissions already signed change nothing",
			[]Release{rel("1.0.0", Stable, from("1.1.0")), rel("1.1.0", Stable, yanked)}, map[string]string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := map[string]string{}
			for _, c := range rollbackChanges(tc.rels) {
				var vs []string
				for _, f := range c.after.RollbackFrom {
					vs = append(vs, f.Version)
				}
				got[c.after.ID] = strings.Join(vs, ",")
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("changes = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestRolloutStagesAreParsedAndChecked(t *testing.T) {
	for _, tc := range []struct {
		name     string
		percents string
		dwell    time.Duration
		ok       bool
	}{
		{"growing percents that end at 100 with a dwell time are a rollout", "1,10,50,100", time.Hour, true},
		{"percent signs are allowed", "5%, 100%", time.Hour, true},
		{"one stage of 100 needs no dwell time", "100", 0, true},
		{"percents must grow", "10,5,100", time.Hour, false},
		{"the last stage must reach 100", "1,10,50", time.Hour, false},
		{"stages but the last need a dwell time", "10,100", 0, false},
		{"no stages is no rollout", "", time.Hour, false},
		{"words are not percents", "ten,100", time.Hour, false},
		{"a dwell time beyond a year is refused", "10,100", 400 * 24 * time.Hour, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, err := device.ParseStages(tc.percents, tc.dwell)
			if (err == nil) != tc.ok {
				t.Fatalf("device.ParseStages(%q, %s) = %+v, %v", tc.percents, tc.dwell, st, err)
			}
			if err == nil && st[len(st)-1].DwellSeconds != 0 {
				t.Fatalf("the last stage has a dwell time: %+v", st)
			}
		})
	}
}

func TestTheIndexsRolloutPlanAnswersAsTheSignedSchedule(t *testing.T) {
	start := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	states := []string{device.RolloutActive, device.RolloutPaused, device.RolloutHalted, device.RolloutAborted}
	r := mrand.New(mrand.NewPCG(1, 2))
	for i := range 2000 {
		ro := &device.SignedRollout{State: states[i%len(states)], Start: start}
		pct := 0
		for range 1 + r.IntN(4) {
			pct += 1 + r.IntN(30)
			ro.Stages = append(ro.Stages, device.RolloutStage{Percent: min(pct, 100), DwellSeconds: int64(1 + r.IntN(7200))})
		}
		if ro.State != device.RolloutActive && r.IntN(4) > 0 {
			ro.PausedAt = start.Add(time.Duration(r.IntN(20000)) * time.Second)
		}
		plan, ok := newRolloutPlan(ro)
		if !ok {
			t.Fatalf("rollout %+v has no plan", ro)
		}
		// The index keeps it encoded, in the arena of its product.
		enc := plan.encode([]byte("before"))[len("before"):]
		if got := decodePlan(string(enc) + "after"); got != plan || len(enc) != planLen(plan.n) {
			t.Fatalf("rollout %+v: the plan %+v reads back from %d bytes as %+v", ro, plan, len(enc), got)
		}
		for range 20 {
			at := start.Add(time.Duration(r.IntN(30000)-2000) * time.Second)
			bucket := r.IntN(101) - 1
			if got, want := plan.reaches(bucket, at.UnixMilli()), ro.Reaches(bucket, at); got != want {
				t.Fatalf("rollout %+v, bucket %d at %s: plan says %v, the signed schedule %v", ro, bucket, at, got, want)
			}
		}
	}
}
