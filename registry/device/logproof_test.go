package device_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"

	"github.com/afterlife-oss/afterlife/internal/dbtest"
	"github.com/afterlife-oss/afterlife/registry/device"
	"github.com/afterlife-oss/afterlife/registry/translog"
	"github.com/afterlife-oss/afterlife/registry/translog/verify"
)

// published is the log's source here: the publications of the test
// registry's releases, as the registry's event log would hold them.
type published struct {
	mu  sync.Mutex
	evs []translog.Event
}

func (p *published) add(o *device.Offer, extra string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.evs = append(p.evs, translog.Event{Seq: int64(len(p.evs) + 1), At: time.Now(), Type: "release.published", Subject: o.Product,
		Fields: map[string]any{"release": o.ReleaseID, "product": o.Product, "version": o.Version, "history": extra,
			"artifacts": []map[string]any{{"target": o.Target.Path, "digest": "sha256:" + o.Target.Hashes["sha256"]}}}})
}

func (p *published) After(_ context.Context, seq int64, limit int) ([]translog.Event, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []translog.Event
	for _, e := range p.evs {
		if e.Seq > seq && len(out) < limit {
			out = append(out, e)
		}
	}
	return out, nil
}

// logFront serves the log's routes a device reads, in front of the test
// registry, and can tamper with proofs or swap the log for another.
type logFront struct {
	mu     sync.Mutex
	log    *translog.Log
	tamper bool
	// noLookup answers the unsigned lookup of a product's entries with
	// an error: a device must not need it.
	noLookup bool
	next     http.Handler
}

func (f *logFront) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	l, tamper, noLookup := f.log, f.tamper, f.noLookup
	f.mu.Unlock()
	ctx := r.Context()
	fail := func(err error) { http.Error(w, err.Error(), http.StatusInternalServerError) }
	switch {
	case strings.HasPrefix(r.URL.Path, "/v1/log/about/") && noLookup:
		http.Error(w, "no lookup here", http.StatusGone)
	case strings.HasPrefix(r.URL.Path, "/v1/log/about/"):
		list, err := l.EntriesAbout(ctx, strings.TrimPrefix(r.URL.Path, "/v1/log/about/"))
		if err != nil {
			fail(err)
			return
		}
		_ = json.NewEncoder(w).Encode(list)
	case strings.HasPrefix(r.URL.Path, "/v1/log/entries/"):
		idx, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/v1/log/entries/"), "/proof"), 10, 64)
		b, err := l.ProofBundle(ctx, idx)
		if err != nil {
			fail(err)
			return
		}
		if tamper { // the entry moved to another index
			b = []byte(strings.Replace(string(b), "index "+strconv.FormatInt(idx, 10), "index "+strconv.FormatInt(idx+1, 10), 1))
		}
		_, _ = w.Write(b)
	case r.URL.Path == "/v1/log/consistency":
		old, _ := strconv.ParseInt(r.URL.Query().Get("old"), 10, 64)
		size, _ := strconv.ParseInt(r.URL.Query().Get("size"), 10, 64)
		p, err := l.Consistency(ctx, old, size)
		if err != nil {
			fail(err)
			return
		}
		for _, h := range p {
			fmt.Fprintln(w, base64.StdEncoding.EncodeToString(h[:]))
		}
	default:
		f.next.ServeHTTP(w, r)
	}
}

func TestADeviceInstallsOnlyWhatTheWitnessedLogProves(t *testing.T) {
	ctx := context.Background()
	reg := startRegistry(t)
	src := &published{}
	keys := t.TempDir()
	openLog := func(src translog.Source) *translog.Log {
		l, err := translog.Open(ctx, translog.Options{DB: dbtest.SQLite(t), KeyDir: keys, Origin: "registry.test/log",
			Sources: map[string]translog.Source{"registry": src}, Replica: "r"})
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	l := openLog(src)
	target, _ := url.Parse(reg.srv.URL)
	front := &logFront{log: l, next: httputil.NewSingleHostReverseProxy(target)}
	srv := httptest.NewServer(front)
	defer srv.Close()
	cfg := deviceConfig(t, reg)
	cfg.Registry = srv.URL
	initDevice(t, reg, cfg)

	publish := func(version string, logged bool) {
		t.Helper()
		o, err := reg.publish(version, firmware(version), false, "")
		if err != nil {
			t.Fatal(err)
		}
		if logged {
			src.add(o, "")
		}
		if _, err := l.Tick(ctx, time.Now(), time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	setPolicy := func(p verify.Policy) {
		t.Helper()
		if _, err := reg.repo.SetRootField(ctx, device.LogPolicyField, p); err != nil {
			t.Fatal(err)
		}
	}
	policy := verify.Policy{Origin: l.Origin(), LogKey: l.VerifierKey()}
	refused := func(from string) error {
		t.Helper()
		res, err := device.Update(ctx, cfg, from)
		if err == nil {
			t.Fatalf("installed %+v", res)
		}
		return err
	}

	t.Run("without a log policy in the root the device does not ask the log", func(t *testing.T) {
		publish("1.0.0", false)
		if res, err := device.Update(ctx, cfg, "0.9.0"); err != nil || res.Version != "1.0.0" {
			t.Fatalf("update: %+v %v", res, err)
		}
	})
	setPolicy(policy)
	t.Run("a release the log does not hold is refused", func(t *testing.T) {
		publish("1.1.0", false)
		if err := refused("1.0.0"); !errors.Is(err, device.ErrNotLogged) {
			t.Fatalf("err = %v, want ErrNotLogged", err)
		}
	})
	t.Run("a release the log proves is installed", func(t *testing.T) {
		publish("1.2.0", true)
		if res, err := device.Update(ctx, cfg, "1.0.0"); err != nil || res.Version != "1.2.0" {
			t.Fatalf("update: %+v %v", res, err)
		}
		if _, err := os.Stat(filepath.Join(cfg.StateDir, "log-checkpoint")); err != nil {
			t.Fatalf("the device kept no checkpoint: %v", err)
		}
	})
	t.Run("a release whose log proof does not verify is refused", func(t *testing.T) {
		publish("1.3.0", true)
		front.mu.Lock()
		front.tamper = true
		front.mu.Unlock()
		defer func() { front.mu.Lock(); front.tamper = false; front.mu.Unlock() }()
		if err := refused("1.2.0"); !errors.Is(err, device.ErrNotLogged) || !strings.Contains(err.Error(), "does not verify") {
			t.Fatalf("err = %v, want a proof that does not verify", err)
		}
	})
	t.Run("a checkpoint without enough cosignatures is refused", func(t *testing.T) {
		_, vkey, _ := note.GenerateKey(rand.Reader, "witness.example")
		wkey, _ := fnote.VKeyToCosignatureV1(vkey)
		strict := policy
		strict.Witnesses = []verify.Witness{{Name: "witness.example", VerifierKey: wkey, Operator: "lab"}}
		strict.Quorum = 1
		setPolicy(strict)
		defer setPolicy(policy)
		if err := refused("1.2.0"); !errors.Is(err, verify.ErrPolicy) {
			t.Fatalf("err = %v, want the witness policy unmet", err)
		}
	})
	t.Run("a target whose signed entry publishes another release is refused", func(t *testing.T) {
		first, err := l.EntryIndexes(ctx, "registry", []int64{1}) // 1.2.0's publication
		if err != nil || len(first) != 1 {
			t.Fatalf("entry of 1.2.0: %v %v", first, err)
		}
		o, err := reg.publishWith("1.3.5", firmware("1.3.5"), release{logEntry: &device.SignedLogEntry{Index: first[1]}})
		if err != nil {
			t.Fatal(err)
		}
		src.add(o, "")
		if _, err := l.Tick(ctx, time.Now(), time.Minute); err != nil {
			t.Fatal(err)
		}
		if err := refused("1.2.0"); !errors.Is(err, device.ErrNotLogged) || !strings.Contains(err.Error(), "does not publish") {
			t.Fatalf("err = %v, want the signed entry to publish another release", err)
		}
	})
	t.Run("a target whose signed entry proves it is installed without asking which entries name the product", func(t *testing.T) {
		next, err := l.Size(ctx)
		if err != nil {
			t.Fatal(err)
		}
		o, err := reg.publishWith("1.3.6", firmware("1.3.6"), release{logEntry: &device.SignedLogEntry{Index: next}})
		if err != nil {
			t.Fatal(err)
		}
		src.add(o, "")
		if _, err := l.Tick(ctx, time.Now(), time.Minute); err != nil {
			t.Fatal(err)
		}
		front.mu.Lock()
		front.noLookup = true
		front.mu.Unlock()
		defer func() { front.mu.Lock(); front.noLookup = false; front.mu.Unlock() }()
		if res, err := device.Update(ctx, cfg, "1.2.0"); err != nil || res.Version != "1.3.6" {
			t.Fatalf("update: %+v %v", res, err)
		}
	})
	t.Run("a rewritten log is refused", func(t *testing.T) {
		// The same key signs another, longer history (the operator
		// rewrote it): 1.3.4 is in it, but it does not extend what the
		// device accepted.
		other := &published{}
		for _, v := range []string{"1.3.1", "1.3.2", "1.3.3", "1.3.4"} {
			o, _ := reg.publish(v, firmware(v), false, "")
			other.add(o, "rewritten")
		}
		rewritten := openLog(other)
		if _, err := rewritten.Tick(ctx, time.Now(), time.Minute); err != nil {
			t.Fatal(err)
		}
		front.mu.Lock()
		front.log = rewritten
		front.mu.Unlock()
		if err := refused("1.2.0"); !errors.Is(err, device.ErrNotLogged) || !strings.Contains(err.Error(), "does not extend") {
			t.Fatalf("err = %v, want the log's consistency to fail", err)
		}
	})
}
