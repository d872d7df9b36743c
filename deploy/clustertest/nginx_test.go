package clustertest

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/afterlife-oss/afterlife/internal/testenv"
)

// shippedNginx is the proxy configuration operators run.
const shippedNginx = "../compose/nginx.conf"

// nginxProxy is a real nginx in front of the replicas, configured from
// the shipped file: only addresses, the listen port and where logs go
// change; every upstream parameter and proxy directive is the shipped one.
type nginxProxy struct {
	URL      string
	dir      string
	shipped  string // the shipped file's text
	conf     string // what nginx runs
	stopping context.CancelFunc
}

// nginxConfig rewrites the shipped configuration for a test: upstream
// servers become backends (their parameters kept), the listen port
// becomes listen, the access log goes to dir with the upstream each
// request reached, and temporary files stay under dir.
func nginxConfig(t *testing.T, shipped, dir, listen string, backends []string) string {
	t.Helper()
	server := regexp.MustCompile(`^(\s*server\s+)serve-(\d+):\d+(\s|;)`)
	var out []string
	for _, line := range strings.Split(shipped, "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case server.MatchString(line):
			m := server.FindStringSubmatch(line)
			var n int
			fmt.Sscan(m[2], &n)
			if n < 1 || n > len(backends) {
				t.Fatalf("%s: upstream serve-%d, but the test runs %d replicas", shippedNginx, n, len(backends))
			}
			line = server.ReplaceAllString(line, "${1}"+backends[n-1]+"${3}")
		case strings.HasPrefix(trimmed, "listen "):
			line = "        listen " + listen + ";"
		case strings.HasPrefix(trimmed, "proxy_cache_path "):
			// The update check's shared cache lives in the test's directory.
			line = regexp.MustCompile(`proxy_cache_path\s+\S+`).ReplaceAllString(line, "proxy_cache_path "+filepath.Join(dir, "cache"))
		case strings.HasPrefix(trimmed, "access_log "):
			line = fmt.Sprintf(`    log_format upstreams '$status $upstream_addr $upstream_status $request_method $uri';
    access_log %[1]s/access.log upstreams;
    client_body_temp_path %[1]s/body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;`, dir)
		}
		out = append(out, line)
	}
	conf := strings.Join(out, "\n")
	// The directives that decide what happens to a failing replica must be
	// exactly the shipped ones.
	for _, l := range strings.Split(shipped, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if strings.HasPrefix(l, "proxy_cache_path ") {
			l = strings.Join(strings.Fields(l)[2:], " ") // its path is the test's own
		}
		if strings.HasPrefix(l, "proxy_") || strings.HasPrefix(l, "keepalive") || strings.HasPrefix(l, "client_max_body_size") || strings.HasPrefix(l, "levels=") {
			if !strings.Contains(conf, l) {
				t.Fatalf("the test's nginx config lost the shipped directive %q", l)
			}
		}
		if strings.HasPrefix(l, "server ") {
			params := strings.TrimSuffix(strings.Join(strings.Fields(l)[2:], " "), ";")
			if !strings.Contains(conf, params) {
				t.Fatalf("the test's nginx config lost the shipped upstream parameters %q", params)
			}
		}
	}
	return conf
}

// startNginx runs nginx with the shipped configuration in front of
// backends, on a free 127.0.0.1 port, until the test ends.
func startNginx(t *testing.T, backends []string) *nginxProxy {
	t.Helper()
	bin, err := exec.LookPath("nginx")
	if err != nil {
		t.Fatalf("nginx is not installed (apt-get install -y nginx-light): %v", err)
	}
	shipped, err := os.ReadFile(shippedNginx)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	listen := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	p := &nginxProxy{URL: "http://" + listen, dir: dir, shipped: string(shipped)}
	p.conf = nginxConfig(t, string(shipped), dir, listen, backends)
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, []byte(p.conf), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	global := fmt.Sprintf("daemon off; pid %[1]s/nginx.pid; error_log %[1]s/error.log warn;", dir)
	if os.Geteuid() == 0 {
		// Workers would otherwise drop to nobody and could not write the
		// update cache in the test's private directory.
		global += " user root;"
	}
	cmd := exec.CommandContext(ctx, bin, "-p", dir, "-c", conf, "-g", global)
	logf, err := os.Create(filepath.Join(dir, "nginx.out"))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGQUIT) }
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start nginx: %v", err)
	}
	// exitErr holds how nginx ended once done is closed.
	var exitErr error
	done := make(chan struct{})
	go func() { exitErr = cmd.Wait(); logf.Close(); close(done) }()
	p.stopping = cancel
	t.Cleanup(func() { cancel(); <-done })
	exited := func() error {
		select {
		case <-done:
			err := exitErr
			out, _ := os.ReadFile(filepath.Join(dir, "nginx.out"))
			return testenv.GiveUp(fmt.Errorf("nginx exited: %v\n%s\n%s", err, out, p.errorLog()))
		default:
			return nil
		}
	}
	testenv.Eventually(t, 15*time.Second, func() error {
		c, err := net.DialTimeout("tcp", listen, time.Second)
		if err != nil {
			if gone := exited(); gone != nil {
				return gone
			}
			return fmt.Errorf("nginx does not listen on %s: %v\n%s", listen, err, p.errorLog())
		}
		return c.Close()
	})
	return p
}

func (p *nginxProxy) errorLog() string {
	b, _ := os.ReadFile(filepath.Join(p.dir, "error.log"))
	return string(b)
}

// markedDown is every line of nginx's error log that says it took a
// replica out of the rotation, or had none left.
func (p *nginxProxy) markedDown() []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(p.errorLog()))
	for sc.Scan() {
		if l := sc.Text(); strings.Contains(l, "temporarily disabled") || strings.Contains(l, "no live upstreams") {
			out = append(out, l)
		}
	}
	return out
}
