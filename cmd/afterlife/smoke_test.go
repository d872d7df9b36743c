package main

import (
	"encoding/json"
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
