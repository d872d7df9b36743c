package registry

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/afterlife-oss/afterlife/internal/httpapi"
)

// smallIndex is newBenchIndex's shape at three products.
func smallIndex(t testing.TB) *index {
	var rels []indexRelease
	for p, dev := range []string{"usb:1d6b:0104", "dt:acme,cam200", "pci:8086:1234"} {
		for v, ver := range []string{"1.0.0", "1.1.0", "2.0.0+build.7"} {
			ch := Stable
			if v == 2 {
				ch = Testing
			}
			rels = append(rels, indexRelease{
				ID: "rel_" + dev + ver, Product: "prod-" + string(rune('a'+p)), Version: ver, Channel: ch,
				Artifacts: []Artifact{{Name: "fw.bin", Kind: "firmware", Size: 10, Digest: "sha256:" + sha256Hex([]byte(dev+ver)), Target: dev + "/" + ver + "/fw.bin"}},
				DeviceIDs: []string{dev},
			})
		}
	}
	return buildIndex(rels)
}

func TestTheFastUpdateCheckAnswersAsTheFullStack(t *testing.T) {
	s := &Service{updateSem: make(chan struct{}, 4), now: time.Now, m: newMetrics()}
	s.index.Store(smallIndex(t))
	api := httpapi.New(httpapi.Options{})
	s.Register(api.V1(), api.Root())
	etag := ""
	for _, tc := range []struct {
		name, query, inm string
		want             int
	}{
		{"an id sent as the device client encodes it gets the offer", url.Values{"id": {"usb:1d6b:0104"}, "version": {"1.0.0"}, "channel": {"stable"}, "bucket": {"7"}}.Encode(), "", 200},
		{"an unescaped id gets the same offer", "id=usb:1d6b:0104&version=1.0.0&channel=stable", "", 200},
		{"a vendor prefix in capitals is found", "id=USB:1d6b:0104&version=1.0.0", "", 200},
		{"a device tree id with a comma is found", "id=dt%3Aacme%2Ccam200&version=1.0.0&channel=testing", "", 200},
		{"the first of repeated keys wins", "id=usb:1d6b:0104&id=nothing&version=1.0.0&version=9.9.9", "", 200},
		{"unknown keys are ignored", "x=1&id=pci:8086:1234&version=1.0.0&bucket=99", "", 200},
		{"an escaped version with a build part is read", "id=usb:1d6b:0104&version=2.0.0%2Bbuild.7&channel=testing", "", 204},
		{"an up-to-date device gets 204", "id=usb:1d6b:0104&version=1.1.0", "", 204},
		{"an unknown device gets 204", "id=usb:ffff:ffff&version=1.1.0", "", 204},
		{"the ETag it holds gets 304", "id=usb:1d6b:0104&version=1.0.0&channel=stable", "etag", 304},
		{"a list of ETags with the held one gets 304", "id=usb:1d6b:0104&version=1.0.0&channel=stable", `"x", etag`, 304},
		{"another ETag gets the offer", "id=usb:1d6b:0104&version=1.0.0&channel=stable", `"other"`, 200},
		{"no id is invalid", "version=1.0.0", "", 400},
		{"a bad version is invalid", "id=usb:1d6b:0104&version=one", "", 400},
		{"a bucket of 100 is invalid", "id=usb:1d6b:0104&version=1.0.0&bucket=100", "", 400},
		{"a negative bucket is invalid", "id=usb:1d6b:0104&version=1.0.0&bucket=-1", "", 400},
		{"a bad escape is read by the full stack", "id=usb%zz&version=1.0.0", "", 400},
		{"a semicolon is read by the full stack", "id=usb:1d6b:0104;x=1&version=1.0.0", "", 400},
		{"an unknown channel is invalid", "id=usb:1d6b:0104&version=1.0.0&channel=beta", "", 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inm := tc.inm
			if etag != "" {
				inm = strings.ReplaceAll(inm, "etag", etag)
			}
			var got [2]*httptest.ResponseRecorder
			for i, h := range []http.Handler{api, api.Engine()} {
				r := httptest.NewRequest("GET", "/v1/devices/updates?"+tc.query, nil)
				if inm != "" {
					r.Header.Set("If-None-Match", inm)
				}
				got[i] = httptest.NewRecorder()
				h.ServeHTTP(got[i], r)
			}
			fast, full := got[0], got[1]
			if fast.Code != tc.want || full.Code != tc.want {
				t.Fatalf("status fast %d, full stack %d, want %d (%s)", fast.Code, full.Code, tc.want, fast.Body)
			}
			for _, h := range []string{"Etag", "Cache-Control", "Content-Type", "Content-Length"} {
				if fast.Header().Get(h) != full.Header().Get(h) {
					t.Errorf("%s: fast %q, full stack %q", h, fast.Header().Get(h), full.Header().Get(h))
				}
			}
			if tc.want >= 400 {
				var body httpapi.ErrorBody
				if err := json.Unmarshal(fast.Body.Bytes(), &body); err != nil || body.Error.RequestID == "" || fast.Header().Get("X-Request-Id") != body.Error.RequestID {
					t.Errorf("error without its request id: %s (X-Request-Id %q)", fast.Body, fast.Header().Get("X-Request-Id"))
				}
				return
			}
			if fast.Body.String() != full.Body.String() {
				t.Errorf("body: fast %s, full stack %s", fast.Body, full.Body)
			}
			if fast.Header().Get("Cache-Control") != UpdateCacheControl {
				t.Errorf("Cache-Control %q", fast.Header().Get("Cache-Control"))
			}
			if tc.want == 200 && etag == "" {
				etag = fast.Header().Get("Etag")
			}
		})
	}
}

// FuzzParseUpdateQuery holds the hot path's query reader to url.ParseQuery:
// whatever it reads, it reads as URL.Query().Get does.
func FuzzParseUpdateQuery(f *testing.F) {
	for _, s := range []string{
		"id=usb%3A1d6b%3A0104&version=1.0.0&channel=stable&bucket=7", "id=a&id=b", "id=%zz", "id=a;b", "%69d=x&id=y",
		"version=1.0.0%2Bb&id=a+b", "id", "=&&=", "bucket=&bucket=3",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		var buf [256]byte
		q, ok := parseUpdateQuery(raw, &buf)
		if !ok {
			return
		}
		want, _ := url.ParseQuery(raw) // as URL.Query: pairs it refuses are skipped
		got := updateQuery{id: want.Get("id"), version: want.Get("version"), channel: want.Get("channel"), bucket: want.Get("bucket")}
		if q != got {
			t.Fatalf("%q: read %+v, url.ParseQuery %+v", raw, q, got)
		}
	})
}
