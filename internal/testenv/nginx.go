package testenv

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// StaticSite is an nginx of the test's own (its own prefix, config and
// port) serving a directory as any static web server would: a path is the
// file, else the file with .html appended, else the directory's
// index.html.
type StaticSite struct {
	URL  string
	Root string
}

// ServeStatic starts nginx on a free 127.0.0.1 port serving root, and stops
// it when the test ends.
func ServeStatic(t testing.TB, root string) *StaticSite {
	t.Helper()
	url := StartNginx(t, NginxConfig{
		HTTP: `access_log off;
    sendfile on;
    types { text/html html; application/json json; text/css css; application/javascript js; application/atom+xml atom; }
    default_type application/octet-stream;`,
		Server: fmt.Sprintf(`root %s;
        location / { try_files $uri $uri.html $uri/ =404; }`, root),
	})
	return &StaticSite{URL: url, Root: root}
}

// NginxConfig is what differs between the nginx servers tests start.
type NginxConfig struct {
	Workers     string // worker_processes; "" means 1
	Connections int    // worker_connections; 0 means 256
	HTTP        string // directives of the http block
	Server      string // directives and locations of its one server
}

// StartNginx starts an nginx of the test's own (its own prefix, config and
// a free 127.0.0.1 port) and stops it when the test ends; it returns the
// server's URL once it answers.
func StartNginx(t testing.TB, c NginxConfig) string {
	t.Helper()
	bin, err := exec.LookPath("nginx")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/nginx"); serr != nil {
			t.Fatalf("testenv: nginx is missing (%v): run scripts/test-deps.sh", err)
		}
		bin = "/usr/sbin/nginx"
	}
	prefix := t.TempDir()
	for _, d := range []string{"logs", "tmp"} {
		if err := os.MkdirAll(filepath.Join(prefix, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	port := FreePort(t)
	user := ""
	if os.Geteuid() == 0 {
		// Workers would otherwise drop to nobody and could not read the
		// test's private temporary directory.
		user = "user root;"
	}
	workers, conns := c.Workers, c.Connections
	if workers == "" {
		workers = "1"
	}
	if conns == 0 {
		conns = 256
	}
	conf := fmt.Sprintf(`%[1]s
worker_processes %[5]s;
daemon off;
pid %[2]s/nginx.pid;
error_log %[2]s/logs/error.log warn;
events { worker_connections %[6]d; }
http {
    client_body_temp_path %[2]s/tmp/body;
    proxy_temp_path %[2]s/tmp/proxy;
    fastcgi_temp_path %[2]s/tmp/fastcgi;
    uwsgi_temp_path %[2]s/tmp/uwsgi;
    scgi_temp_path %[2]s/tmp/scgi;
    %[7]s
    server {
        listen 127.0.0.1:%[3]d;
        %[4]s
    }
}
`, user, prefix, port, c.Server, workers, conns, c.HTTP)
	confPath := filepath.Join(prefix, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "-p", prefix, "-c", confPath)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("testenv: start nginx: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() { cancel(); <-done })
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	nginxPrefixes.Store(url, prefix)
	Eventually(t, 15*time.Second, func() error {
		select {
		case err := <-done:
			return GiveUp(fmt.Errorf("nginx exited: %v\n%s", err, out.String()))
		default:
		}
		resp, err := http.Get(url + "/")
		if err != nil {
			return fmt.Errorf("nginx not answering on %s: %v", url, err) // its output is read only once it has exited
		}
		resp.Body.Close()
		return nil
	})
	return url
}

// nginxPrefixes maps the URL of every nginx StartNginx started to its
// prefix directory.
var nginxPrefixes sync.Map

// NginxCPU is the CPU time (user and system) the nginx serving url has
// used so far, its master and its workers together: what serving costs
// it, whatever share of the cores other processes took meanwhile.
func NginxCPU(t testing.TB, url string) time.Duration {
	t.Helper()
	prefix, ok := nginxPrefixes.Load(url)
	if !ok {
		t.Fatalf("testenv: no nginx of this test serves %s", url)
	}
	b, err := os.ReadFile(filepath.Join(prefix.(string), "nginx.pid"))
	if err != nil {
		t.Fatalf("testenv: nginx's pid: %v", err)
	}
	master, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("testenv: nginx's pid: %v", err)
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatalf("testenv: nginx's CPU: %v", err)
	}
	var total time.Duration
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue // not a process
		}
		if ppid, cpu, ok := procStat(pid); ok && (pid == master || ppid == master) {
			total += cpu
		}
	}
	return total
}

// ProcessCPU is the CPU time (user and system) process pid has used so
// far; 0 when it is gone.
func ProcessCPU(pid int) time.Duration {
	_, cpu, _ := procStat(pid)
	return cpu
}

// procStat reads a process's parent and CPU time from /proc/PID/stat.
func procStat(pid int) (ppid int, cpu time.Duration, ok bool) {
	st, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, false // gone
	}
	// pid (comm) state ppid … utime stime: comm may hold spaces.
	i := bytes.LastIndexByte(st, ')')
	if i < 0 {
		return 0, 0, false
	}
	f := strings.Fields(string(st[i+1:]))
	if len(f) < 13 {
		return 0, 0, false
	}
	ppid, _ = strconv.Atoi(f[1])
	u, _ := strconv.ParseInt(f[11], 10, 64) // field 14 of stat
	k, _ := strconv.ParseInt(f[12], 10, 64) // field 15
	return ppid, time.Duration(u+k) * time.Second / clockTicks, true
}

// clockTicks is USER_HZ, the unit of /proc's CPU times: 100 on every
// Linux architecture Go runs on.
const clockTicks = 100
