// Reading ports from flags, host:port pairs and URLs, for the checks that
// compare them across files.

package deploy

import (
	"net"
	"net/url"
	"strconv"
	"strings"
	"testing"
)

func flagValue(args []string, name string) (string, bool) {
	for i, a := range args {
		if a == "--"+name && i+1 < len(args) {
			return args[i+1], true
		}
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v, true
		}
	}
	return "", false
}

func portOf(t *testing.T, where, hostport string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(hostport)
	if err != nil {
		t.Fatalf("%s: %q: %v", where, hostport, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatalf("%s: %q: port is not a number", where, hostport)
	}
	return n
}

func urlHostPort(t *testing.T, where, raw string) (string, int) {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil || u.Port() == "" {
		t.Fatalf("%s: %q is not a URL with an explicit port", where, raw)
	}
	return u.Hostname(), portOf(t, where, u.Host)
}
