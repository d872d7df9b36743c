package deploy

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The systemd example is an include for nginx's http block, so the checks
// wrap it the way docs/deploy.md's walkthrough does.
const systemdNginx = "systemd/nginx-afterlife.conf"

func TestNginxAcceptsTheSystemdExampleAsTheWalkthroughInstallsIt(t *testing.T) {
	nginx := requireTool(t, "nginx", "nginx-light")
	dir := t.TempDir()
	conf := strings.NewReplacer("listen 80;", "listen 127.0.0.1:8080;",
		"/var/cache/nginx/afterlife-updates", filepath.Join(dir, "cache")).Replace(string(mustRead(t, systemdNginx)))
	if err := os.WriteFile(filepath.Join(dir, "afterlife.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	top := fmt.Sprintf("events {}\nhttp {\n    access_log %[1]s/access.log;\n    client_body_temp_path %[1]s/body;\n    proxy_temp_path %[1]s/proxy;\n    include %[1]s/afterlife.conf;\n}\n", dir)
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(top), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(nginx, "-t", "-q", "-p", dir, "-c", filepath.Join(dir, "nginx.conf"),
		"-g", "pid "+filepath.Join(dir, "nginx.pid")+"; error_log stderr;").CombinedOutput()
	if err != nil {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}
}

func TestTheSystemdExampleProxiesLikeTheComposeConfig(t *testing.T) {
	want := proxySettings(string(mustRead(t, "compose/nginx.conf")))
	got := proxySettings(string(mustRead(t, systemdNginx)))
	if len(want) == 0 || !slices.Equal(got, want) {
		t.Fatalf("%s and compose/nginx.conf differ in how they proxy (a fix to one belongs in both):\n got %q\nwant %q", systemdNginx, got, want)
	}
}

func TestTheSystemdExampleUpstreamsUseTheUnitsPort(t *testing.T) {
	env := string(mustRead(t, "systemd/serve.env"))
	m := regexp.MustCompile(`(?m)^AFTERLIFE_ADDR=\S*:(\d+)$`).FindStringSubmatch(env)
	if m == nil {
		t.Fatal("systemd/serve.env sets no AFTERLIFE_ADDR")
	}
	ups := regexp.MustCompile(`(?m)^\s*server\s+\S+:(\d+)\b`).FindAllStringSubmatch(string(mustRead(t, systemdNginx)), -1)
	if len(ups) < 2 {
		t.Fatalf("%s lists %d upstream servers, want at least two replicas", systemdNginx, len(ups))
	}
	for _, u := range ups {
		if u[1] != m[1] {
			t.Errorf("%s: upstream %s, want port %s (AFTERLIFE_ADDR in serve.env)", systemdNginx, strings.TrimSpace(u[0]), m[1])
		}
	}
}

// proxySettings lists the directives that decide how requests reach the
// replicas: the proxy_* and body settings, keepalive, and each upstream
// server's parameters without its address.
func proxySettings(conf string) []string {
	var out []string
	server := regexp.MustCompile(`^server\s+\S+:\d+\s*(.*)$`)
	for _, line := range strings.Split(conf, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		switch {
		case server.MatchString(line):
			out = append(out, "server ADDR "+server.FindStringSubmatch(line)[1])
		case strings.HasPrefix(line, "proxy_"), strings.HasPrefix(line, "client_max_body_size"), strings.HasPrefix(line, "keepalive "):
			out = append(out, line)
		}
	}
	return out
}
