package main

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/afterlife-oss/afterlife/internal/testenv"
)

// testDeviceIDSquatting is attack 3 of the hostile-participant review,
// against the demo's real server: vendor B registers a product listing the
// demo camera's device id, hoping its maintainers' firmware reaches the
// demo's devices.
func testDeviceIDSquatting(t *testing.T, srv *testenv.Server, state string) {
	afterlife(t, true, "admin", "org", "create", "squatter", "--kind", "vendor", "--server", srv.URL, "--token", srv.Token)
	out, _ := afterlife(t, true, "admin", "token", "create", "--name", "squatter-ci", "--role", "vendor", "--org", "squatter", "--server", srv.URL, "--token", srv.Token)
	vendorB := strings.TrimSpace(out)

	var refusal struct {
		Error struct{ Code, Message string }
	}
	code := apiJSON(t, "POST", srv.URL+"/v1/products", vendorB, map[string]any{
		"id": "squat-cam", "vendor": "squatter", "model": "Squat Cam", "device_ids": []string{"usb:5e1f:0001", "demo:afterlife-cam"},
	}, &refusal)
	if code != http.StatusConflict || !strings.Contains(refusal.Error.Message, "belongs to product demo-cam") {
		t.Fatalf("registering another product's device id: %d %+v, want 409 naming demo-cam", code, refusal)
	}
	if code := apiJSON(t, "GET", srv.URL+"/v1/products/squat-cam", "", nil, nil); code != http.StatusNotFound {
		t.Fatalf("the refused product exists: %d", code)
	}
	if code := apiJSON(t, "POST", srv.URL+"/v1/products", vendorB, map[string]any{
		"id": "squat-cam", "vendor": "squatter", "model": "Squat Cam", "device_ids": []string{"usb:5e1f:0001"},
	}, nil); code != http.StatusCreated {
		t.Fatalf("B registering its own product: %d", code)
	}
	var found struct {
		Products []struct{ ID string } `json:"products"`
	}
	apiJSON(t, "GET", srv.URL+"/v1/products?device_id=demo:afterlife-cam", "", nil, &found)
	if len(found.Products) != 1 || found.Products[0].ID != "demo-cam" {
		t.Fatalf("device id lookup: %+v, want demo-cam alone", found.Products)
	}

	_, stderr := afterlife(t, false, "admin", "device-ids", "reassign", "usb:5e1f:0002", "--to", "squat-cam", "--server", srv.URL, "--token", vendorB)
	if !strings.Contains(stderr, "403") && !strings.Contains(strings.ToLower(stderr), "forbidden") && !strings.Contains(stderr, "may not") {
		t.Fatalf("a vendor reassigning a device id: %s", stderr)
	}
	out, _ = afterlife(t, true, "admin", "device-ids", "reassign", "usb:5e1f:0002", "--to", "squat-cam", "--server", srv.URL, "--token", srv.Token)
	if !strings.Contains(out, "now belongs to squat-cam") {
		t.Fatalf("admin reassign said %q", out)
	}

	fresh := filepath.Join(t.TempDir(), "device")
	out, _ = afterlife(t, true, "device", "update", "--registry", srv.URL, "--state", state,
		"--id", "demo:afterlife-cam", "--current", "0", "--install-to", fresh, "--accept-community-firmware")
	if !strings.Contains(out, "installed demo-cam 1.0.0") {
		t.Fatalf("the demo's device after the squatting attempt: %q", out)
	}
}

// testForgedReports is attack 8 of the hostile-participant review: install
// reports nobody can vouch for must not pull firmware back. The demo's
// build is published again as 1.0.1 on stable, so the demo's own 1.0.0
// stays offered for the rest of the story.
func testForgedReports(t *testing.T, srv *testenv.Server, demo release) {
	var rel struct {
		release
		Channel    string `json:"channel"`
		Held       bool   `json:"held"`
		PulledBack bool   `json:"pulled_back"`
		Artifacts  []struct {
			Name, Kind, Target string
			Digest             string
		} `json:"artifacts"`
	}
	get := func(id string) {
		t.Helper()
		if code := apiJSON(t, "GET", srv.URL+"/v1/releases/"+id, "", nil, &rel); code != http.StatusOK {
			t.Fatalf("GET release %s: %d", id, code)
		}
	}
	stats := func(id string) (st struct{ Success, Failure, FailingNetworks int }) {
		t.Helper()
		var raw struct {
			Success         int `json:"success"`
			Failure         int `json:"failure"`
			FailingNetworks int `json:"failing_networks"`
		}
		apiJSON(t, "GET", srv.URL+"/v1/releases/"+id+"/reports", "", nil, &raw)
		st.Success, st.Failure, st.FailingNetworks = raw.Success, raw.Failure, raw.FailingNetworks
		return st
	}
	report := func(body map[string]any, from string) int {
		t.Helper()
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest("POST", srv.URL+"/v1/devices/reports", bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		if from != "" {
			req.Header.Set("X-Forwarded-For", from) // believed from 127.0.0.1, a local proxy
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	installID := func() string {
		b := make([]byte, 16)
		rand.Read(b)
		return hex.EncodeToString(b)
	}
	// download fetches the firmware as a device with install id id does and
	// returns the receipt that came with it.
	download := func(id string) string {
		t.Helper()
		for _, a := range rel.Artifacts {
			if a.Kind == "firmware" {
				r := receiptOf(t, srv, a.Target, a.Digest, id)
				if r == "" {
					t.Fatalf("the download of %s came without a receipt", a.Target)
				}
				return r
			}
		}
		t.Fatal("the release has no firmware artifact")
		return ""
	}

	t.Run("the demo device's own report was counted through its receipt", func(t *testing.T) {
		if st := stats(demo.ID); st.Success < 1 {
			t.Fatalf("stats of %s: %+v; the real device client's success report was not counted", demo.ID, st)
		}
	})

	var next struct {
		ID string `json:"id"`
	}
	if code := apiJSON(t, "POST", srv.URL+"/v1/releases", srv.Token, map[string]any{
		"build_id": demo.BuildID, "product": "demo-cam", "version": "1.0.1", "channel": "stable",
	}, &next); code != http.StatusCreated {
		t.Fatalf("publish 1.0.1: %d", code)
	}

	t.Run("1000 forged reports from one address change nothing", func(t *testing.T) {
		// A genuine receipt, but for the demo's 1.0.0.
		get(demo.ID)
		otherID := installID()
		otherReceipt := receiptOf(t, srv, rel.Artifacts[0].Target, rel.Artifacts[0].Digest, otherID)
		get(next.ID)
		before, beforeStats := rel.Channel, stats(next.ID)
		codes := map[int]int{}
		for i := range 1000 {
			body := map[string]any{"device_id": fmt.Sprintf("usb:%04x:%04x", i, i), "release_id": next.ID, "version": "1.0.1",
				"outcome": "failure", "reason": "forged"}
			switch i % 3 {
			case 1: // an invented receipt
				body["install_id"], body["receipt"] = installID(), "bm90IGEgcmVjZWlwdCBmcm9tIHRoZSByZWdpc3RyeQ"
			case 2: // a receipt for another release
				body["install_id"], body["receipt"] = otherID, otherReceipt
			}
			codes[report(body, "")]++
		}
		get(next.ID)
		if rel.Channel != before || rel.Held || rel.PulledBack {
			t.Fatalf("after 1000 forged reports (answers %v) the release is channel %s, held %v, pulled back %v", codes, rel.Channel, rel.Held, rel.PulledBack)
		}
		// 403: no valid receipt; 429: too many from this network.
		if codes[http.StatusForbidden] < 100 || codes[http.StatusForbidden]+codes[http.StatusTooManyRequests] != 1000 {
			t.Fatalf("answers to 1000 forged reports: %v; want 403 (no valid receipt) for at least 100, 429 for the rest", codes)
		}
		if st := stats(next.ID); st != beforeStats || st.Failure != 0 {
			t.Fatalf("forged reports were counted: %+v, before %+v", st, beforeStats)
		}
	})
	get(next.ID)

	t.Run("genuine failures from enough networks hold the release; a person pulls it back", func(t *testing.T) {
		networks := []string{"198.51.100.7", "203.0.113.9", "2001:db8:77::1", "100.64.1.1", "192.0.2.8"}
		for i, from := range networks {
			id := installID()
			if code := report(map[string]any{"device_id": "demo:afterlife-cam", "release_id": next.ID, "version": "1.0.1",
				"outcome": "failure", "reason": "no video after boot", "install_id": id, "receipt": download(id)}, from); code != http.StatusNoContent {
				t.Fatalf("genuine report from %s: %d", from, code)
			}
			get(next.ID)
			if held := i == len(networks)-1; rel.Held != held || rel.PulledBack || rel.Channel != "stable" {
				t.Fatalf("after %d failures from distinct networks: held=%v pulled_back=%v channel=%s", i+1, rel.Held, rel.PulledBack, rel.Channel)
			}
		}
		if st := stats(next.ID); st.Failure != 5 || st.FailingNetworks != 5 {
			t.Fatalf("stats: %+v", st)
		}
		check := func() string {
			var offer struct {
				Version string `json:"version"`
			}
			apiJSON(t, "GET", srv.URL+"/v1/devices/updates?id=demo:afterlife-cam&version=1.0.0", "", nil, &offer)
			return offer.Version
		}
		if v := check(); v != "" {
			t.Fatalf("a held release is still offered: %s", v)
		}

		out, _ := afterlife(t, true, "admin", "token", "create", "--name", "cam-maintainer", "--role", "maintainer", "--server", srv.URL, "--token", srv.Token)
		maint := strings.TrimSpace(out)
		_, stderr := afterlife(t, false, "release", "pull-back", next.ID, "--reason", "bricks", "--server", srv.URL, "--token", maint)
		if !strings.Contains(stderr, "not a maintainer of product demo-cam") {
			t.Fatalf("an ungranted maintainer pulling back: %s", stderr)
		}
		if code := apiJSON(t, "POST", srv.URL+"/v1/products/demo-cam/maintainers", srv.Token, map[string]string{"name": "cam-maintainer"}, nil); code != http.StatusCreated {
			t.Fatalf("grant: %d", code)
		}
		out, _ = afterlife(t, true, "release", "pull-back", next.ID, "--reason", "no video after boot on rev B", "--server", srv.URL, "--token", maint)
		if !strings.Contains(out, "pulled back") {
			t.Fatalf("pull-back said %q", out)
		}
		get(next.ID)
		if !rel.PulledBack || rel.Held || rel.Channel != "testing" {
			t.Fatalf("after the maintainer's pull-back: %+v", rel)
		}
		if v := check(); v != "" {
			t.Fatalf("a pulled-back release is still offered: %s", v)
		}
	})
}

// receiptOf downloads a target as install id does and returns the receipt
// header, "" when there is none.
func receiptOf(t *testing.T, srv *testenv.Server, target, digest, id string) string {
	t.Helper()
	dir, name := filepath.Split(target)
	req, _ := http.NewRequest("GET", srv.URL+"/tuf/targets/"+dir+strings.TrimPrefix(digest, "sha256:")+"."+name, nil)
	req.Header.Set("Afterlife-Install-Id", id)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("download %s: %d %v", target, resp.StatusCode, err)
	}
	// From S3 the file comes after a redirect; the receipt is on the redirect.
	for r := resp; r != nil; r = r.Request.Response {
		if v := r.Header.Get("Afterlife-Receipt"); v != "" {
			return v
		}
	}
	return ""
}
