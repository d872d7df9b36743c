package recipes

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/afterlife-oss/afterlife/internal/errs"
)

// fakeResolver answers from a table, so that tests can name hosts on
// private networks without any traffic leaving 127.0.0.0/8.
type fakeResolver map[string][]string

func (r fakeResolver) LookupIPAddr(_ context.Context, host string) ([]net.IPAddr, error) {
	ips, ok := r[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	var out []net.IPAddr
	for _, s := range ips {
		out = append(out, net.IPAddr{IP: net.ParseIP(s)})
	}
	return out, nil
}

var internalNames = fakeResolver{
	"localhost":      {"127.0.0.1", "::1"},
	"internal.test":  {"10.1.2.3"},
	"metadata.test":  {"169.254.169.254"},
	"ula.test":       {"fd00::1"},
	"cgnat.test":     {"100.64.1.1"},
	"mapped.test":    {"::ffff:10.0.0.1"},
	"nat64.test":     {"64:ff9b::a9fe:a9fe"},
	"multicast.test": {"239.1.1.1"},
	"zero.test":      {"0.0.0.0"},
	"mixed.test":     {"93.184.216.34", "10.0.0.1"},
}

// countingListener is an internal service on 127.0.0.1 that records every
// connection made to it.
func countingListener(t *testing.T) (port string, accepts *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	accepts = new(atomic.Int32)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepts.Add(1)
			c.Close()
		}
	}()
	_, port, _ = net.SplitHostPort(ln.Addr().String())
	return port, accepts
}

// assertRefused checks that err is the one refusal error, word for word,
// and that the failed fetch left nothing behind.
func assertRefused(t *testing.T, err error, dir string) {
	t.Helper()
	if !errs.Is(err, errs.Invalid) || err.Error() != refusedURL().Error() {
		t.Errorf("err = %v (%v), want the refusal %q", err, errs.KindOf(err), refusedURL())
	}
	if err != nil && strings.Contains(err.Error(), "secret") {
		t.Errorf("the error repeats the URL's credentials: %v", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused fetch left %s behind", dir)
	}
}

func TestFetchRefusesInternalAddressesBeforeConnecting(t *testing.T) {
	port, accepts := countingListener(t)
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := closed.Addr().(*net.TCPAddr).Port
	closed.Close()
	urls := map[string]string{
		"an https URL of a loopback port":                "https://127.0.0.1:" + port + "/x.git",
		"an http URL of a loopback port":                 "http://127.0.0.1:" + port + "/x.git",
		"a loopback port nothing listens on":             "https://127.0.0.1:" + strconv.Itoa(closedPort) + "/x.git",
		"localhost":                                      "https://localhost:" + port + "/x.git",
		"the IPv6 loopback":                              "https://[::1]:" + port + "/x.git",
		"an IPv4-mapped loopback":                        "https://[::ffff:127.0.0.1]:" + port + "/x.git",
		"the unspecified address":                        "https://0.0.0.0:" + port + "/x.git",
		"credentials in the URL":                         "https://user:secret@127.0.0.1:" + port + "/x.git",
		"credentials for a public host":                  "https://user:secret@example.org/x.git",
		"a name on a private network":                    "https://internal.test/x.git",
		"a name on the link-local metadata address":      "https://metadata.test/x.git",
		"a name on a unique-local address":               "https://ula.test/x.git",
		"a name on a carrier-grade NAT address":          "https://cgnat.test/x.git",
		"a name on an IPv4-mapped private address":       "https://mapped.test/x.git",
		"a name on a NAT64 address":                      "https://nat64.test/x.git",
		"a name on a multicast address":                  "https://multicast.test/x.git",
		"a name on the unspecified address":              "https://zero.test/x.git",
		"a name with one public and one private address": "https://mixed.test/x.git",
		"a name that does not resolve":                   "https://nowhere.test/x.git",
		"plain http to a public host":                    "http://example.org/x.git",
		"a file URL":                                     "file:///etc",
		"a local path":                                   "/etc",
		"an ssh URL":                                     "ssh://example.org/x.git",
	}
	f := Fetcher{Resolver: internalNames}
	for name, u := range urls {
		t.Run(name+" is refused", func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "co")
			_, err := f.Fetch(context.Background(), u, "", dir)
			assertRefused(t, err, dir)
		})
	}
	if n := accepts.Load(); n != 0 {
		t.Errorf("the internal service was connected to %d times", n)
	}
}

func TestFetchRefusesRedirectsToInternalAddresses(t *testing.T) {
	port, accepts := countingListener(t)
	targets := map[string]string{
		"a redirect to a loopback port over http":    "http://127.0.0.1:" + port + "/x.git/info/refs?service=git-upload-pack",
		"a redirect to a loopback port over https":   "https://127.0.0.1:" + port + "/x.git/info/refs?service=git-upload-pack",
		"a redirect to a private name":               "https://internal.test/x.git/info/refs?service=git-upload-pack",
		"a redirect to the metadata address":         "https://169.254.169.254/x.git/info/refs?service=git-upload-pack",
		"a redirect carrying credentials":            "https://user:secret@internal.test/x.git/info/refs?service=git-upload-pack",
		"a redirect to a name that does not resolve": "https://nowhere.test/x.git/info/refs?service=git-upload-pack",
	}
	var redirected atomic.Int32
	var location atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		redirected.Add(1)
		http.Redirect(w, r, location.Load().(string), http.StatusFound)
	}))
	defer srv.Close()
	// The redirecting server stands for a public host: the only address
	// this Fetcher treats as public.
	f := Fetcher{Resolver: internalNames, trusted: netip.MustParseAddrPort(srv.Listener.Addr().String())}
	for name, target := range targets {
		t.Run(name+" is refused", func(t *testing.T) {
			location.Store(target)
			before := redirected.Load()
			dir := filepath.Join(t.TempDir(), "co")
			_, err := f.Fetch(context.Background(), srv.URL+"/x.git", "", dir)
			assertRefused(t, err, dir)
			if redirected.Load() == before {
				t.Error("the redirecting server was not asked: the test proves nothing")
			}
		})
	}
	if n := accepts.Load(); n != 0 {
		t.Errorf("the internal service was connected to %d times", n)
	}
}

func TestTheDialerChecksTheAddressRightBeforeConnecting(t *testing.T) {
	p := &netPolicy{resolver: internalNames}
	for _, addr := range []string{"10.0.0.1:443", "127.0.0.1:443", "[::1]:443", "[fd00::1]:443", "169.254.169.254:80", "[::ffff:192.168.1.1]:443", "100.64.0.1:443"} {
		if err := p.control("tcp", addr, nil); err == nil {
			t.Errorf("control let %s through", addr)
		}
	}
	if err := (&netPolicy{}).control("tcp", "93.184.216.34:443", nil); err != nil {
		t.Errorf("control refused a public address: %v", err)
	}
	if err := (&netPolicy{allowLocal: true}).control("tcp", "127.0.0.1:443", nil); err != nil {
		t.Errorf("control refused loopback with local repositories allowed: %v", err)
	}
}

func TestPublicAddr(t *testing.T) {
	tests := []struct {
		addr   string
		public bool
	}{
		{"93.184.216.34", true},
		{"2606:2800:220:1:248:1893:25c8:1946", true},
		{"127.0.0.1", false},
		{"::1", false},
		{"10.0.0.1", false},
		{"172.16.0.1", false},
		{"192.168.0.1", false},
		{"169.254.169.254", false},
		{"fe80::1", false},
		{"fd00::1", false},
		{"0.0.0.0", false},
		{"::", false},
		{"224.0.0.1", false},
		{"ff02::1", false},
		{"100.64.0.1", false},
		{"255.255.255.255", false},
		{"::ffff:127.0.0.1", false},
		{"::ffff:10.0.0.1", false},
		{"64:ff9b::7f00:1", false},
		{"2002:7f00:1::", false},
	}
	for _, tt := range tests {
		want := "not public"
		if tt.public {
			want = "public"
		}
		t.Run(tt.addr+" is "+want, func(t *testing.T) {
			if got := PublicAddr(netip.MustParseAddr(tt.addr)); got != tt.public {
				t.Errorf("PublicAddr(%s) = %v", tt.addr, got)
			}
		})
	}
}
