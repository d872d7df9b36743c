package registry

import (
	"encoding/xml"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/afterlife-oss/afterlife/internal/atom"
	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/dbtest"
)

func TestFirmwareFeedsAnnounceEachReleaseAndItsWithdrawal(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d, envOptions{})
		first, _ := e.firmware("1.0.0")
		e.publish(PublishRequest{BuildID: first, Version: "1.0.0", Channel: Stable, Notes: "Fixes the RTSP crash."})
		e.clock.add(time.Hour)
		second, _ := e.firmware("1.1.0")
		bad := e.publish(PublishRequest{BuildID: second, Version: "1.1.0", Channel: Testing})
		if resp, body := e.do("POST", "/v1/releases/"+bad.ID+"/yank", e.admin, YankRequest{Reason: "drains the battery."}); resp.StatusCode != http.StatusOK {
			t.Fatalf("yank: %d %s", resp.StatusCode, body)
		}
		read := func(t *testing.T, path string) atom.Feed {
			t.Helper()
			resp, body := e.do("GET", path, "", nil)
			if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/atom+xml") {
				t.Fatalf("GET %s: %d %s", path, resp.StatusCode, resp.Header.Get("Content-Type"))
			}
			var f atom.Feed
			if err := xml.Unmarshal(body, &f); err != nil {
				t.Fatalf("GET %s is no Atom feed: %v\n%s", path, err, body)
			}
			return f
		}
		for _, path := range []string{"/feeds/products/demo-cam/firmware.atom", "/feeds/firmware.atom"} {
			t.Run(path+" lists the releases newest first, the withdrawn one marked", func(t *testing.T) {
				f := read(t, path)
				if len(f.Entries) != 2 {
					t.Fatalf("%d entries: %+v", len(f.Entries), f.Entries)
				}
				if got := f.Entries[0]; got.Title != "demo-cam 1.1.0 withdrawn" || !strings.Contains(got.Summary, "Withdrawn: drains the battery.") {
					t.Errorf("the withdrawn release reads %+v", got)
				}
				if got := f.Entries[1]; got.Title != "demo-cam 1.0.0 on the stable channel" ||
					!strings.Contains(got.Summary, "2 of 2 independent builders") || !strings.Contains(got.Summary, "Fixes the RTSP crash.") ||
					got.Links[0].Href != "https://registry.example/products/demo-cam" {
					t.Errorf("the release reads %+v", got)
				}
				if f.Links[0].Href != "https://registry.example"+path || f.Updated != f.Entries[0].Updated {
					t.Errorf("the feed's self link %q, updated %q", f.Links[0].Href, f.Updated)
				}
			})
		}
		t.Run("an unknown product's feed is not found", func(t *testing.T) {
			if resp, _ := e.do("GET", "/feeds/products/nope/firmware.atom", "", nil); resp.StatusCode != http.StatusNotFound {
				t.Fatalf("status %d", resp.StatusCode)
			}
		})
	})
}
