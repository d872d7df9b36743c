package deploy

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestNoShippedProxyTakesAReplicaOutForAnAnswer reads every nginx
// configuration under deploy/: a replica's 503 (load shedding, the blob
// store away) is for the client, so it must not move the request on nor
// count against the replica, and no replica may be marked down, or a blob
// outage and a rolling restart become total outages (deploy/clustertest
// shows it with a real nginx).
func TestNoShippedProxyTakesAReplicaOutForAnAnswer(t *testing.T) {
	found := 0
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".conf") {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		conf := string(b)
		if !strings.Contains(conf, "proxy_pass") {
			return nil
		}
		found++
		for _, m := range regexp.MustCompile(`(?m)^\s*proxy_next_upstream\s+([^;]*);`).FindAllStringSubmatch(conf, -1) {
			for _, cond := range strings.Fields(m[1]) {
				if strings.HasPrefix(cond, "http_") {
					t.Errorf("%s: proxy_next_upstream %s: an answer (%s) moves the request on and counts against the replica; list only error and timeout", path, m[1], cond)
				}
			}
		}
		for _, up := range regexp.MustCompile(`upstream\s+\S+\s*\{([^}]*)\}`).FindAllStringSubmatch(conf, -1) {
			for _, m := range regexp.MustCompile(`(?m)^[ \t]*server[ \t]+([^\s;]+)([^;]*);`).FindAllStringSubmatch(up[1], -1) {
				if !strings.Contains(m[2], "max_fails=0") {
					t.Errorf("%s: upstream server %s%s: without max_fails=0 nginx marks a replica down, and a replica just restarted stays out while the next one stops", path, m[1], m[2])
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if found == 0 {
		t.Fatal("no nginx configuration under deploy/")
	}
}
