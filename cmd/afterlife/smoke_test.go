package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/afterlife-oss/afterlife/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// backends are the two ways afterlife runs: embedded, and scaled out.
func backends(t *testing.T) map[string]testenv.ServeOptions {
	return map[string]testenv.ServeOptions{
		"sqlite and disk": {},
		"postgres and minio": func() testenv.ServeOptions {
			mc := testenv.MinIO(t)
			bucket := mc.NewBucket(t, true)
			return testenv.ServeOptions{
				Args: []string{"--database", testenv.Postgres(t), "--blobs", mc.URL(bucket)},
				Env:  []string{"AWS_ACCESS_KEY_ID=" + mc.AccessKey, "AWS_SECRET_ACCESS_KEY=" + mc.SecretKey},
			}
		}(),
	}
}

func TestServeSmoke(t *testing.T) {
	for name, opts := range backends(t) {
		t.Run(name, func(t *testing.T) {
			srv := testenv.Serve(t, opts)

			info, err := os.Stat(filepath.Join(srv.Data, "admin.token"))
			if err != nil || info.Mode().Perm() != 0o600 {
				t.Fatalf("admin.token: %v, mode %v; want mode 0600", err, info.Mode())
			}
			get := func(path, token string) (int, map[string]any) {
				req, _ := http.NewRequest("GET", srv.URL+path, nil)
				if token != "" {
					req.Header.Set("Authorization", "Bearer "+token)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				var body map[string]any
				json.NewDecoder(resp.Body).Decode(&body)
				return resp.StatusCode, body
			}
			if code, _ := get("/healthz", ""); code != 200 {
				t.Fatalf("healthz %d", code)
			}
			if code, body := get("/v1/openapi.json", ""); code != 200 || body["openapi"] != "3.1.0" {
				t.Fatalf("anonymous openapi.json: %d %v", code, body["openapi"])
			}
			if code, body := get("/v1/admin/tokens", ""); code != 401 || body["error"] == nil {
				t.Fatalf("admin route without a token: %d %v, want 401 with an error body", code, body)
			}
			if code, body := get("/v1/admin/tokens", srv.Token); code != 200 || body["tokens"] == nil {
				t.Fatalf("admin route with the admin token: %d %v", code, body)
			}
			resp, err := http.Get(srv.URL + "/metrics")
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("metrics: %v %v", err, resp)
			}
			resp.Body.Close()

			if err := srv.Stop(syscall.SIGTERM); err != nil {
				t.Fatalf("after SIGTERM the server exited with %v, want 0\n%s", err, srv.LogTail())
			}
			if !strings.Contains(srv.LogTail(), "stopped") {
				t.Fatalf("no clean stop in the log:\n%s", srv.LogTail())
			}
		})
	}
}

// Every series a real server exports is documented, and an operator can keep
// /metrics off the public address or behind a token of its own.
func TestMetricsAreDocumentedAndCanBeKeptPrivate(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "metrics.md"))
	if err != nil {
		t.Fatal(err)
	}
	scrape := func(t *testing.T, url, token string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "metrics.token")
	if err := os.WriteFile(tokenFile, []byte("m-0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	t.Run("a token file closes /metrics to everyone without the token, API tokens included", func(t *testing.T) {
		srv := testenv.Serve(t, testenv.ServeOptions{Args: []string{"--local-builders", "0", "--metrics-token-file", tokenFile}})
		if code, _ := scrape(t, srv.URL+"/metrics", ""); code != http.StatusUnauthorized {
			t.Errorf("anonymous scrape: %d, want 401", code)
		}
		if code, _ := scrape(t, srv.URL+"/metrics", srv.Token); code != http.StatusUnauthorized {
			t.Errorf("scrape with the admin API token: %d, want 401", code)
		}
		code, body := scrape(t, srv.URL+"/metrics", "m-0123456789abcdef")
		if code != http.StatusOK {
			t.Fatalf("scrape with the metrics token: %d", code)
		}
		var missing []string
		seen := map[string]bool{}
		for _, line := range strings.Split(body, "\n") {
			name, ok := strings.CutPrefix(line, "# TYPE ")
			if !ok || !strings.HasPrefix(name, "afterlife_") {
				continue
			}
			name, _, _ = strings.Cut(name, " ")
			seen[name] = true
			if !strings.Contains(string(doc), "`"+name+"`") {
				missing = append(missing, name)
			}
		}
		if len(seen) < 8 || len(missing) > 0 {
			t.Errorf("exported afterlife series %v; docs/metrics.md lacks %v", seen, missing)
		}
		if code, _ := scrape(t, srv.URL+"/v1/whoami", srv.Token); code != http.StatusOK {
			t.Errorf("the API still takes its own tokens: whoami %d", code)
		}
	})
	t.Run("a metrics address takes /metrics off the API's address", func(t *testing.T) {
		addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
		srv := testenv.Serve(t, testenv.ServeOptions{Args: []string{"--local-builders", "0", "--metrics-addr", addr}})
		if code, _ := scrape(t, srv.URL+"/metrics", ""); code != http.StatusNotFound {
			t.Errorf("/metrics on the API address: %d, want 404", code)
		}
		code, body := scrape(t, "http://"+addr+"/metrics", "")
		if code != http.StatusOK || !strings.Contains(body, "afterlife_http_requests_total") {
			t.Errorf("/metrics on the metrics address: %d %.200q", code, body)
		}
		if code, _ := scrape(t, "http://"+addr+"/v1/whoami", srv.Token); code != http.StatusNotFound {
			t.Errorf("the metrics address serves the API: %d, want 404", code)
		}
	})
}
