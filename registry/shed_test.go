package registry

import (
	"net/http"
	"testing"

	"github.com/afterlife-oss/afterlife/internal/dbtest"
)

func TestAReplicaThatServesNoUpdateChecksAnswersEachWith503AndRetryAfter(t *testing.T) {
	e := newEnv(t, dbtest.SQLite(t), envOptions{maxUpdateLoad: NoUpdateChecks})
	b, _ := e.firmware("1.0.0")
	e.publish(PublishRequest{BuildID: b, Version: "1.0.0", Channel: Stable})
	for _, tt := range []struct{ name, id, version string }{
		{"a device with an update waiting", "usb:1d6b:0104", "0.9.0"},
		{"a device up to date", "usb:1d6b:0104", "1.0.0"},
		{"a device of no product", "usb:ffff:ffff", "1.0.0"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, _ := e.check(tt.id, tt.version, Stable)
			if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "1" {
				t.Fatalf("%d Retry-After %q, want 503 and 1", resp.StatusCode, resp.Header.Get("Retry-After"))
			}
		})
	}
	if resp, _ := e.do("GET", "/v1/releases?product=demo-cam", "", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("the rest of the API: %d", resp.StatusCode)
	}
}
