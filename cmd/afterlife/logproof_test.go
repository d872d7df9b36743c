package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/afterlife-oss/afterlife/builder/witness"
	"github.com/afterlife-oss/afterlife/internal/dbtest"
	"github.com/afterlife-oss/afterlife/internal/testenv"
	"github.com/afterlife-oss/afterlife/recipes"
	"github.com/afterlife-oss/afterlife/registry/translog"
)

// TestADeviceInstallsOnlyWhatTheLogProvesOnTheRealServer is the device's
// check of the transparency log on a real `afterlife serve` with the log's
// policy in the TUF root, on both backends. Each release's targets sign the
// index of its publication entry, and the device installs through that
// entry alone (the proxy in front of the server hides the log's unsigned
// list of entries). Through the same proxy it refuses a release whose log
// proof does not verify, a checkpoint stripped of its cosignatures, and a
// log rewritten by its operator: the log's own key and a colluding
// witness's key sign another history that still holds the release's
// publication at the signed index, and consistency with the checkpoint the
// device accepted before fails.
func TestADeviceInstallsOnlyWhatTheLogProvesOnTheRealServer(t *testing.T) {
	for name, opts := range backends(t) {
		t.Run(name, func(t *testing.T) {
			opts.Args = append(opts.Args, "--allow-local-repos", "--builder-cache", builderCache(t), "--translog-quorum", "1", "--translog-in-root",
				"--translog-every", "100ms")
			srv := testenv.Serve(t, opts)
			as := []string{"--server", srv.URL, "--token", srv.Token}
			afterlife(t, true, append([]string{"admin", "org", "create", "acme"}, as...)...)
			afterlife(t, true, append([]string{"vendor", "product", "--id", "acme-cam", "--vendor", "acme", "--model", "Cam", "--device-ids", "usb:acme:cam"}, as...)...)
			repo := filepath.Join(t.TempDir(), "acme-fw.git")
			if _, err := recipes.CommitTree(context.Background(), repo, fstest.MapFS{"afterlife.yaml": {Data: []byte(spoofRecipe)}}, "acme-fw 1.0.0", time.Unix(1_700_000_000, 0)); err != nil {
				t.Fatal(err)
			}
			out, _ := afterlife(t, true, append([]string{"recipe", "submit", "--repo", "file://" + repo, "--ref", "HEAD"}, as...)...)
			var sub struct {
				BuildID string `json:"build_id"`
			}
			if err := json.Unmarshal([]byte(out), &sub); err != nil || sub.BuildID == "" {
				t.Fatalf("no build id from recipe submit (%v): %s", err, out)
			}
			testenv.Eventually(t, time.Minute, func() error {
				if !bytes.Contains(get(t, srv.URL+"/tuf/root.json"), []byte(`"afterlife_log"`)) {
					return fmt.Errorf("the root carries no log policy yet")
				}
				return nil
			})
			testenv.Eventually(t, 4*time.Minute, func() error {
				var build struct {
					State string `json:"state"`
				}
				apiJSON(t, "GET", srv.URL+"/v1/builds/"+sub.BuildID, srv.Token, nil, &build)
				switch build.State {
				case "reproducible":
					return nil
				case "", "pending", "running":
					return fmt.Errorf("no verdict on build %s yet", sub.BuildID)
				}
				return testenv.GiveUp(fmt.Errorf("build %s: %s\n%s", sub.BuildID, build.State, srv.LogTail()))
			})
			// publish returns the index of the release's publication
			// entry once its targets sign it and a witnessed checkpoint
			// holds it.
			publish := func(v string) int64 {
				t.Helper()
				var rel struct {
					ID       string `json:"id"`
					LogEntry *int64 `json:"log_entry"`
				}
				req := map[string]string{"build_id": sub.BuildID, "product": "acme-cam", "version": v, "channel": "stable"}
				if code := apiJSON(t, "POST", srv.URL+"/v1/releases", srv.Token, req, &rel); code != http.StatusCreated {
					t.Fatalf("publish %s: %d", v, code)
				}
				testenv.Eventually(t, 30*time.Second, func() error {
					var info struct {
						Witnessed int64 `json:"witnessed_size"`
					}
					apiJSON(t, "GET", srv.URL+"/v1/releases/"+rel.ID, "", nil, &rel)
					apiJSON(t, "GET", srv.URL+"/v1/log", "", nil, &info)
					if rel.LogEntry == nil || info.Witnessed <= *rel.LogEntry {
						return fmt.Errorf("release %s: log entry %v, witnessed size %d", v, rel.LogEntry, info.Witnessed)
					}
					return nil
				})
				return *rel.LogEntry
			}

			// Every request of the device goes through the proxy, which
			// hides the unsigned list of the product's entries.
			p := startHostileProxy(t, srv.URL)
			p.replace("/v1/log/about/acme-cam", func([]byte) []byte { return []byte("[]") })
			bin := deviceBinary(t)
			state := filepath.Join(t.TempDir(), "device")
			device := func(args ...string) (string, error) {
				cmd := exec.Command(bin, append(args, "--state", state)...)
				cmd.Env = append(os.Environ(), "AFTERLIFE_REGISTRY=")
				b, err := cmd.CombinedOutput()
				return string(b), err
			}
			if out, err := device("init", "--registry", p.URL, "--product", "acme-cam", "--id", "usb:acme:cam", "--accept-community-firmware", "--trust-on-first-use"); err != nil {
				t.Fatalf("init: %v\n%s", err, out)
			}
			refused := func(t *testing.T, says string) {
				t.Helper()
				out, err := device("update")
				if err == nil || !strings.Contains(out, says) {
					t.Fatalf("update: %v, want a refusal that says %q:\n%s", err, says, out)
				}
				if strings.Contains(out, "installed acme-cam") {
					t.Fatalf("installed a refused release:\n%s", out)
				}
			}

			t.Run("a release whose target signs its publication entry installs through that entry", func(t *testing.T) {
				idx := publish("1.0.0")
				out, err := device("update", "--verbose")
				if err != nil || !strings.Contains(out, "installed acme-cam 1.0.0") || !strings.Contains(out, "entry="+strconv.FormatInt(idx, 10)) {
					t.Fatalf("update: %v, want 1.0.0 installed through entry %d:\n%s", err, idx, out)
				}
			})

			idx := publish("1.1.0")
			t.Run("a release whose log proof does not verify is refused", func(t *testing.T) {
				p.replace("/proof", func(b []byte) []byte { return rewriteProofEntry(t, b, `"version":"1.1.0"`, `"version":"1.1.1"`) })
				defer p.replace("/proof", func(b []byte) []byte { return b })
				refused(t, "does not verify")
			})
			t.Run("a checkpoint without enough cosignatures is refused", func(t *testing.T) {
				var info translog.Info
				apiJSON(t, "GET", srv.URL+"/v1/log", "", nil, &info)
				p.replace("/proof", func(b []byte) []byte { return stripCosignatures(b, info.Origin) })
				defer p.replace("/proof", func(b []byte) []byte { return b })
				refused(t, "not enough witnesses cosigned")
			})
			t.Run("a log its operator rewrote is refused", func(t *testing.T) {
				rewritten, accepted := rewriteLog(t, srv, idx, state)
				p.replace("/proof", func([]byte) []byte {
					b, err := rewritten.ProofBundle(context.Background(), idx)
					if err != nil {
						t.Error(err)
					}
					return b
				})
				p.replace("/v1/log/consistency", func([]byte) []byte {
					proof, err := rewritten.Consistency(context.Background(), accepted, idx+1)
					if err != nil {
						t.Error(err)
					}
					var out bytes.Buffer
					for _, h := range proof {
						fmt.Fprintln(&out, base64.StdEncoding.EncodeToString(h[:]))
					}
					return out.Bytes()
				})
				defer p.replace("/proof", func(b []byte) []byte { return b })
				defer p.replace("/v1/log/consistency", func(b []byte) []byte { return b })
				refused(t, "does not extend")
			})
			t.Run("the same release installs once the proxy stops lying", func(t *testing.T) {
				out, err := device("update", "--verbose")
				if err != nil || !strings.Contains(out, "installed acme-cam 1.1.0") || !strings.Contains(out, "entry="+strconv.FormatInt(idx, 10)) {
					t.Fatalf("update: %v, want 1.1.0 installed through entry %d:\n%s", err, idx, out)
				}
			})
		})
	}
}

// rewriteProofEntry changes the entry a proof bundle carries (its "extra"
// line), keeping the proof: the inclusion proof no longer holds.
func rewriteProofEntry(t *testing.T, b []byte, from, to string) []byte {
	lines := strings.Split(string(b), "\n")
	for i, l := range lines {
		if e, ok := strings.CutPrefix(l, "extra "); ok {
			entry, err := base64.StdEncoding.DecodeString(e)
			if err != nil || !bytes.Contains(entry, []byte(from)) {
				t.Errorf("the bundle's entry %s (%v) holds no %s", entry, err, from)
			}
			lines[i] = "extra " + base64.StdEncoding.EncodeToString(bytes.Replace(entry, []byte(from), []byte(to), 1))
		}
	}
	return []byte(strings.Join(lines, "\n"))
}

// stripCosignatures keeps only the log's own signature on the checkpoint a
// proof bundle carries.
func stripCosignatures(b []byte, origin string) []byte {
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "— ") && !strings.HasPrefix(l, "— "+origin+" ") {
			continue
		}
		out = append(out, l)
	}
	return []byte(strings.Join(out, "\n"))
}

// rewriteLog is what an operator who holds the log's key and one
// witness's key could serve: another history of idx+1 entries, whose last
// is the release's publication at its signed index, signed by the log and
// cosigned by that witness. It returns the log and the size of the
// checkpoint the device accepted before.
func rewriteLog(t *testing.T, srv *testenv.Server, idx int64, state string) (*translog.Log, int64) {
	t.Helper()
	ctx := context.Background()
	var info translog.Info
	apiJSON(t, "GET", srv.URL+"/v1/log", "", nil, &info)
	var entry map[string]any
	if err := json.Unmarshal(get(t, srv.URL+"/v1/log/entries/"+strconv.FormatInt(idx, 10)), &entry); err != nil {
		t.Fatal(err)
	}
	keys := t.TempDir()
	writeFile(t, filepath.Join(keys, translog.KeyFile), readFile(t, filepath.Join(srv.Data, "keys", translog.KeyFile)))
	writeFile(t, filepath.Join(keys, "witness.key"), readFile(t, filepath.Join(srv.Data, "keys", "builders", "local-1.witness.key")))
	history := make([]translog.Event, idx+1)
	for i := range history {
		history[i] = translog.Event{Seq: int64(i + 1), At: time.Unix(1_700_000_000+int64(i), 0), Type: "product.registered", Subject: "acme-cam",
			Fields: map[string]any{"product": "acme-cam", "detail": "a history that never was"}}
	}
	last := &history[idx]
	last.Type, last.Subject, last.Fields = "release.published", entry["subject"].(string), entry
	for _, k := range []string{"type", "at", "subject"} {
		delete(entry, k)
	}
	l, err := translog.Open(ctx, translog.Options{DB: dbtest.SQLite(t), KeyDir: keys, Origin: info.Origin, Replica: "rewriter",
		Sources: map[string]translog.Source{"registry": rewrittenHistory(history)}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Tick(ctx, time.Now(), time.Minute); err != nil {
		t.Fatal(err)
	}
	w, err := witness.New(witness.Options{Log: localWitness{logWitnessing{l}, "demo-operator-1"}, Name: "local-1", KeyFile: filepath.Join(keys, "witness.key")})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := w.Once(ctx); err != nil || n != idx+1 {
		t.Fatalf("the colluding witness cosigned %d: %v", n, err)
	}
	cp := strings.Split(string(readFile(t, filepath.Join(state, "log-checkpoint"))), "\n")
	accepted, err := strconv.ParseInt(cp[1], 10, 64)
	if err != nil || accepted > idx {
		t.Fatalf("the device accepted a checkpoint of size %q (%v), want one below entry %d", cp[1], err, idx)
	}
	return l, accepted
}

// rewrittenHistory is a translog.Source of fixed events.
type rewrittenHistory []translog.Event

func (h rewrittenHistory) After(_ context.Context, seq int64, limit int) ([]translog.Event, error) {
	var out []translog.Event
	for _, e := range h {
		if e.Seq > seq && len(out) < limit {
			out = append(out, e)
		}
	}
	return out, nil
}
