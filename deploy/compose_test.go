// The compose file: its ports, references and the nginx proxy in front.

package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
}

type composeService struct {
	Image       string         `yaml:"image"`
	Command     []string       `yaml:"command"`
	Environment map[string]any `yaml:"environment"`
	Volumes     []string       `yaml:"volumes"`
	Ports       []string       `yaml:"ports"`
	DependsOn   map[string]any `yaml:"depends_on"`
	Healthcheck struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
}

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	var c composeFile
	readYAML(t, "compose/compose.yaml", &c)
	if len(c.Services) == 0 {
		t.Fatal("compose/compose.yaml: no services")
	}
	return c
}

func isAfterlifeImage(image string) bool {
	name, _, _ := strings.Cut(image[strings.LastIndex(image, "/")+1:], ":")
	return name == "afterlife" || name == "afterlife-builder"
}

func envNames(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func TestComposePortsAgree(t *testing.T) {
	c := loadCompose(t)
	conf := string(mustRead(t, "compose/nginx.conf"))
	upstreams := map[string]int{}
	for _, m := range regexp.MustCompile(`(?m)^\s*server\s+([a-z0-9-]+):(\d+)`).FindAllStringSubmatch(conf, -1) {
		upstreams[m[1]], _ = strconv.Atoi(m[2])
	}
	listen := regexp.MustCompile(`(?m)^\s*listen\s+(\d+);`).FindStringSubmatch(conf)
	if listen == nil {
		t.Fatal("compose/nginx.conf: no listen port")
	}
	proxyPort, _ := strconv.Atoi(listen[1])

	replicas := 0
	for name, s := range c.Services {
		if len(s.Command) == 0 || !isAfterlifeImage(s.Image) {
			continue
		}
		switch s.Command[0] {
		case "serve":
			replicas++
			addr, ok := flagValue(s.Command, "addr")
			if !ok {
				t.Errorf("compose service %s: serve without --addr", name)
				continue
			}
			port := portOf(t, name, addr)
			if up, ok := upstreams[name]; !ok || up != port {
				t.Errorf("compose/nginx.conf: upstream %s:%d, want %s:%d (its --addr)", name, up, name, port)
			}
			if len(s.Healthcheck.Test) == 0 {
				t.Errorf("compose service %s has no health check", name)
			} else if _, hp := urlHostPort(t, name, s.Healthcheck.Test[len(s.Healthcheck.Test)-1]); hp != port {
				t.Errorf("compose service %s: health check on port %d, serve listens on %d", name, hp, port)
			}
		case "builder":
			coord, ok := flagValue(s.Command, "coordinator")
			if !ok {
				t.Errorf("compose service %s: builder without --coordinator", name)
				continue
			}
			host, port := urlHostPort(t, name, coord)
			if _, ok := c.Services[host]; !ok || port != proxyPort {
				t.Errorf("compose service %s: coordinator %s:%d, want a service listening there (proxy listens on %d)", name, host, port, proxyPort)
			}
		}
	}
	if replicas < 2 {
		t.Errorf("compose runs %d serve replicas, want 2", replicas)
	}
	for up := range upstreams {
		if s, ok := c.Services[up]; !ok || len(s.Command) == 0 || s.Command[0] != "serve" {
			t.Errorf("compose/nginx.conf: upstream %s is not a serve service", up)
		}
	}
	proxy, ok := c.Services["proxy"]
	if !ok || len(proxy.Ports) != 1 || !strings.HasSuffix(proxy.Ports[0], ":"+strconv.Itoa(proxyPort)) {
		t.Errorf("compose service proxy publishes %v, want HOST:%d", proxy.Ports, proxyPort)
	}
}

func TestComposeReferencesResolve(t *testing.T) {
	c := loadCompose(t)
	for name, s := range c.Services {
		for dep := range s.DependsOn {
			if _, ok := c.Services[dep]; !ok {
				t.Errorf("compose service %s depends on unknown service %s", name, dep)
			}
		}
		for _, v := range s.Volumes {
			src, _, _ := strings.Cut(v, ":")
			if strings.HasPrefix(src, ".") || strings.HasPrefix(src, "/") {
				if _, err := os.Stat(filepath.Join("compose", src)); err != nil {
					t.Errorf("compose service %s mounts %s: %v", name, src, err)
				}
			} else if _, ok := c.Volumes[src]; !ok {
				t.Errorf("compose service %s uses volume %s, which is not declared", name, src)
			}
		}
	}
}

func TestNginxAcceptsTheProxyConfig(t *testing.T) {
	nginx := requireTool(t, "nginx", "nginx-light")
	dir := t.TempDir()
	// nginx resolves upstream names at load time; compose's service names
	// exist only on its network, so the check points them at loopback.
	conf := regexp.MustCompile(`server\s+serve-\d+:`).ReplaceAllString(string(mustRead(t, "compose/nginx.conf")), "server 127.0.0.1:")
	conf = strings.ReplaceAll(conf, "/var/cache/nginx/afterlife-updates", filepath.Join(dir, "cache"))
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(nginx, "-t", "-q", "-p", dir, "-c", filepath.Join(dir, "nginx.conf"),
		"-g", "pid "+filepath.Join(dir, "nginx.pid")+"; error_log stderr;").CombinedOutput()
	if err != nil {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}
}
