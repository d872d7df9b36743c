package cli

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

func TestADepositSaysWhatBecomesPublicWhenAndAsksFirst(t *testing.T) {
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		http.Error(w, `{"error":{"code":"invalid","message":"test server"}}`, http.StatusBadRequest)
	}))
	t.Cleanup(srv.Close)
	file := filepath.Join(t.TempDir(), "datasheet.pdf")
	if err := os.WriteFile(file, []byte("%PDF"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, policy, answer string
		yes                  bool
		says                 []string
		sent                 bool
	}{
		{name: "a date is named and a no sends nothing", policy: "on=2027-06-30", answer: "n\n",
			says: []string{"It becomes public on Wednesday 30 June 2027 at 00:00 UTC.", "keys included", "Deposit? [y/N]"}},
		{name: "an empty answer is a no", policy: "immediate", answer: "\n",
			says: []string{"It becomes public as soon as the upload is committed."}},
		{name: "a dead-man policy names its period, grace and first deadline", policy: "dead-man=30d,7d", answer: "y\n", sent: true,
			says: []string{"does not check in (afterlife vendor checkin) for 30 days plus 7 days of grace: first on"}},
		{name: "a dead-man policy under a day says hours", policy: "dead-man=12h,6h", answer: "n\n",
			says: []string{"for 12 hours plus 6 hours of grace"}},
		{name: "several rules are read as whichever comes first", policy: "on=2027-06-30+quorum=2/3:alice,bob,carol", answer: "yes\n", sent: true,
			says: []string{"Whichever comes first:", "when 2 of the trustees alice, bob, carol approve."}},
		{name: "--yes asks nothing", policy: "immediate", yes: true, sent: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := requests.Load()
			cmd := VendorCommand()
			args := []string{"deposit", "--product", "acme-cam", "--policy", tc.policy, "--server", srv.URL, "--token", "t",
				"--state", filepath.Join(t.TempDir(), "state"), file}
			if tc.yes {
				args = append(args, "--yes")
			}
			cmd.SetArgs(args)
			var out, errb bytes.Buffer
			cmd.SetIn(strings.NewReader(tc.answer))
			cmd.SetOut(&out)
			cmd.SetErr(&errb)
			err := cmd.ExecuteContext(t.Context())
			for _, want := range tc.says {
				if !strings.Contains(errb.String(), want) {
					t.Errorf("the command said:\n%s\nwant %q in it", errb.String(), want)
				}
			}
			sent := requests.Load() > before
			if sent != tc.sent {
				t.Errorf("sent a request: %v, want %v (err %v)", sent, tc.sent, err)
			}
			if !tc.sent && (err == nil || !strings.Contains(err.Error(), "deposit cancelled: nothing was sent")) {
				t.Errorf("a declined deposit returned %v", err)
			}
			if tc.yes && strings.Contains(errb.String(), "[y/N]") {
				t.Errorf("--yes still asked:\n%s", errb.String())
			}
		})
	}
}

func TestAnInterruptedDepositSaysHowToResume(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "0")
		http.Error(w, `{"error":{"code":"unavailable","message":"busy"}}`, http.StatusServiceUnavailable)
	}))
	t.Cleanup(srv.Close)
	file := filepath.Join(t.TempDir(), "datasheet.pdf")
	if err := os.WriteFile(file, []byte("%PDF"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := VendorCommand()
	cmd.SetArgs([]string{"deposit", "--product", "acme-cam", "--policy", "immediate", "--yes", "--server", srv.URL, "--token", "t",
		"--state", filepath.Join(t.TempDir(), "state"), file})
	cmd.SetOut(io.Discard)
	cmd.SetErr(io.Discard)
	err := cmd.ExecuteContext(t.Context())
	if err == nil || !strings.Contains(err.Error(), "run the same command again to resume") {
		t.Fatalf("an interrupted deposit says %v", err)
	}
}
