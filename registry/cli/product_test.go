package cli

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/spf13/cobra"

	apicli "github.com/afterlife-oss/afterlife/internal/cli"
)

// productServer answers the product routes and records what they were sent.
type productServer struct {
	mu   sync.Mutex
	sent []string // "PATH BODY"
}

func (s *productServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.sent = append(s.sent, r.URL.Path+" "+strings.TrimSpace(string(body)))
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if strings.HasSuffix(r.URL.Path, "/retire") {
		_ = json.NewEncoder(w).Encode(map[string]any{"id": "acme-typo", "retired": true})
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"id": "acme-cam", "model": "Cam 2", "device_ids": []string{"usb:1:2"}})
}

func (s *productServer) requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.sent...)
}

func runProduct(t *testing.T, srv string, in string, args ...string) (string, string, error) {
	t.Helper()
	var cf apicli.Flags
	root := &cobra.Command{Use: "vendor"}
	cf.Add(root)
	root.AddCommand(ProductCommand(&cf))
	root.SetArgs(append(append([]string{"product"}, args...), "--server", srv, "--token", "t"))
	var out, errb bytes.Buffer
	root.SetIn(strings.NewReader(in))
	root.SetOut(&out)
	root.SetErr(&errb)
	err := root.ExecuteContext(t.Context())
	return out.String(), errb.String(), err
}

func TestProductEditSendsOnlyWhatItIsToldAndRetireAsksFirst(t *testing.T) {
	for _, tc := range []struct {
		name   string
		args   []string
		answer string
		sent   string // the one request expected, "" for none
		says   string
		fails  bool
	}{
		{name: "an edit sends only the flags given", args: []string{"edit", "acme-cam", "--model", "Cam 2", "--reason", "typo"},
			sent: `/v1/products/acme-cam/edit {"model":"Cam 2","reason":"typo"}`, says: "product acme-cam changed: Cam 2"},
		{name: "device ids come one a flag, commas kept, and replace the list", args: []string{"edit", "acme-cam", "--device-id", "dt:acme,cam200", "--device-id", "usb:1:2"},
			sent: `/v1/products/acme-cam/edit {"device_ids":["dt:acme,cam200","usb:1:2"]}`},
		{name: "an empty --device-id empties the list", args: []string{"edit", "acme-cam", "--device-id", ""},
			sent: `/v1/products/acme-cam/edit {"device_ids":[]}`},
		{name: "an edit that names no field sends nothing", args: []string{"edit", "acme-cam", "--reason", "why"}, fails: true},
		{name: "retiring asks, and a no sends nothing", args: []string{"retire", "acme-typo"}, answer: "n\n", fails: true},
		{name: "retiring asks, and a yes retires", args: []string{"retire", "acme-typo", "--reason", "twice"}, answer: "y\n",
			sent: `/v1/products/acme-typo/retire {"reason":"twice"}`, says: "product acme-typo retired"},
		{name: "--yes retires without asking", args: []string{"retire", "acme-typo", "--yes"},
			sent: `/v1/products/acme-typo/retire {"reason":""}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ps := &productServer{}
			srv := httptest.NewServer(ps)
			t.Cleanup(srv.Close)
			out, errOut, err := runProduct(t, srv.URL, tc.answer, tc.args...)
			if (err != nil) != tc.fails {
				t.Fatalf("err = %v, want failure %v\n%s", err, tc.fails, errOut)
			}
			got := ps.requests()
			switch {
			case tc.sent == "" && len(got) != 0:
				t.Errorf("sent %q, want nothing", got)
			case tc.sent != "" && (len(got) != 1 || got[0] != tc.sent):
				t.Errorf("sent %q, want %q", got, tc.sent)
			}
			if !strings.Contains(out, tc.says) {
				t.Errorf("printed %q, want %q in it", out, tc.says)
			}
			if tc.answer != "" && !strings.Contains(errOut, "[y/N]") {
				t.Errorf("did not ask: %q", errOut)
			}
		})
	}
}
