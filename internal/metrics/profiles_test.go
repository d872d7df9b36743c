package metrics_test

import (
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/afterlife-oss/afterlife/internal/metrics"
)

func TestRuntimeProfilesAreServedOnTheirOwnAddress(t *testing.T) {
	addr, stop, err := metrics.ListenProfiles("127.0.0.1:0", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	for _, tc := range []struct {
		name, path, want string
		status           int
	}{
		{"the index lists the profiles", "/debug/pprof/", "goroutine", 200},
		{"a heap profile is served", "/debug/pprof/heap?debug=1", "heap profile", 200},
		{"nothing else is", "/metrics", "", 404},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := http.Get("http://" + addr + tc.path)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status || !strings.Contains(string(body), tc.want) {
				t.Fatalf("GET %s: %d, %.200s", tc.path, resp.StatusCode, body)
			}
		})
	}
}
