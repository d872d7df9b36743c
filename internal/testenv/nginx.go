package testenv

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
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
	conf := fmt.Sprintf(`%s
worker_processes 1;
daemon off;
pid %[2]s/nginx.pid;
error_log %[2]s/logs/error.log warn;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path %[2]s/tmp/body;
    proxy_temp_path %[2]s/tmp/proxy;
    fastcgi_temp_path %[2]s/tmp/fastcgi;
    uwsgi_temp_path %[2]s/tmp/uwsgi;
    scgi_temp_path %[2]s/tmp/scgi;
    sendfile on;
    types { text/html html; application/json json; text/css css; application/javascript js; application/atom+xml atom; }
    default_type application/octet-stream;
    server {
        listen 127.0.0.1:%[3]d;
        root %[4]s;
        location / { try_files $uri $uri.html $uri/ =404; }
    }
}
`, user, prefix, port, root)
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
	s := &StaticSite{URL: fmt.Sprintf("http://127.0.0.1:%d", port), Root: root}
	Eventually(t, 15*time.Second, func() error {
		select {
		case err := <-done:
			return GiveUp(fmt.Errorf("nginx exited: %v\n%s", err, out.String()))
		default:
		}
		resp, err := http.Get(s.URL + "/")
		if err != nil {
			return fmt.Errorf("nginx not answering on %s: %v", s.URL, err)
		}
		resp.Body.Close()
		return nil
	})
	return s
}
