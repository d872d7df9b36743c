package escrow

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/afterlife-oss/afterlife/escrow/receipt"
	"github.com/afterlife-oss/afterlife/internal/blob"
	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/principal"
)

// checkReleased asserts that id is public, its files readable by anyone
// and its plaintext findable by digest.
func checkReleased(t *testing.T, e *env, id, fired string) {
	t.Helper()
	ctx := context.Background()
	d, err := e.svc.Get(ctx, nobody, id)
	if err != nil {
		t.Fatalf("anonymous Get after release: %v", err)
	}
	if d.State != Released || d.Fired != fired {
		t.Fatalf("deposit = state %s fired %q, want released by %q", d.State, d.Fired, fired)
	}
	got, err := readAll(t, e.svc, nobody, id, "keys/unlock.pem")
	if err != nil || got != demoFiles["keys/unlock.pem"] {
		t.Fatalf("anonymous read = %q, %v", got, err)
	}
	size, ok, err := e.svc.ReleasedFile(ctx, blob.Digest("sha256:"+hexSum([]byte(demoFiles["src/main.c"]))))
	if err != nil || !ok || size != int64(len(demoFiles["src/main.c"])) {
		t.Fatalf("ReleasedFile = %d, %v, %v", size, ok, err)
	}
	kinds := e.eventKinds(t, id)
	if kinds[len(kinds)-1] != "released" || strings.Count(strings.Join(kinds, ","), "released") != 1 {
		t.Fatalf("events = %v", kinds)
	}
	evs, _ := e.svc.Events(ctx, nobody, id)
	if last := evs[len(evs)-1]; last.Policy != fired || last.Actor == "" {
		t.Fatalf("release event = %+v", last)
	}
}

func TestEachPolicyReleasesExactlyAtItsConditionAndNotBefore(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		sc := e.svc.Scheduler("r1")
		tick := func(at time.Time) {
			t.Helper()
			e.clock.Set(at)
			if err := sc.Tick(ctx, at); err != nil {
				t.Fatal(err)
			}
		}

		t.Run("immediate releases at commit", func(t *testing.T) {
			e.clock.Set(t0)
			d, _ := e.deposit(t, acme, "demo-cam", "immediate", demoFiles)
			checkReleased(t, e, d.ID, "immediate")
			if got := e.products.handedOver(); len(got) != 1 || got[0] != "demo-cam" {
				t.Fatalf("handed over = %v", got)
			}
		})

		t.Run("a date releases at that instant and not a millisecond before", func(t *testing.T) {
			e.clock.Set(t0)
			on := t0.Add(48 * time.Hour)
			d, _ := e.deposit(t, acme, "demo-cam", "on="+on.Format(time.RFC3339), demoFiles)
			tick(on.Add(-time.Millisecond))
			if got := e.state(t, d.ID); got != Sealed {
				t.Fatalf("state before the date = %s", got)
			}
			tick(on)
			checkReleased(t, e, d.ID, "on")
		})

		t.Run("dead-man releases when grace ends after a missed check-in", func(t *testing.T) {
			e.clock.Set(t0)
			d, _ := e.deposit(t, acme, "other-cam", "dead-man=30d,7d", demoFiles)
			day := 24 * time.Hour
			e.clock.Set(t0.Add(20 * day))
			if _, err := e.svc.Checkin(ctx, acme, "acme"); err != nil {
				t.Fatal(err)
			}
			tick(t0.Add(37 * day)) // would have fired without the check-in
			if got := e.state(t, d.ID); got != Sealed {
				t.Fatalf("state after a check-in = %s", got)
			}
			deadline := t0.Add(20*day + 37*day)
			tick(deadline.Add(-time.Millisecond))
			if got := e.state(t, d.ID); got != Sealed {
				t.Fatalf("state just before grace ends = %s", got)
			}
			tick(deadline)
			checkReleased(t, e, d.ID, "dead-man")
		})

		t.Run("quorum releases at the K-th valid approval", func(t *testing.T) {
			e.clock.Set(t0)
			keys := map[string]ed25519.PrivateKey{}
			for _, name := range []string{"alice", "bob", "carol"} {
				pub, key, _ := ed25519.GenerateKey(rand.Reader)
				keys[name] = key
				if _, err := e.svc.AddTrustee(ctx, admin, name, receipt.FormatPublicKey(pub)); err != nil {
					t.Fatal(err)
				}
			}
			_, err := e.svc.AddTrustee(ctx, acme, "mallory", receipt.FormatPublicKey(keys["alice"].Public().(ed25519.PublicKey)))
			wantKind(t, err, errs.Forbidden)

			d, _ := e.deposit(t, acme, "demo-cam", "quorum=2/3:alice,bob,carol", demoFiles)
			as := func(name string) principal.Principal { return principal.Principal{Name: name, Role: principal.Trustee} }
			sig := func(name string) string { return SignApproval(keys[name], d.ID, d.ManifestDigest) }

			_, err = e.svc.Approve(ctx, as("alice"), d.ID, "alice", sig("bob"))
			wantKind(t, err, errs.Invalid)
			_, err = e.svc.Approve(ctx, as("bob"), d.ID, "alice", sig("alice"))
			wantKind(t, err, errs.Forbidden)
			_, err = e.svc.Approve(ctx, acme, d.ID, "alice", sig("alice"))
			wantKind(t, err, errs.Forbidden)

			res, err := e.svc.Approve(ctx, as("alice"), d.ID, "alice", sig("alice"))
			if err != nil || res.Released || res.Approvals != 1 {
				t.Fatalf("first approval = %+v, %v", res, err)
			}
			res, err = e.svc.Approve(ctx, as("alice"), d.ID, "alice", sig("alice"))
			if err != nil || res.Released || res.Approvals != 1 {
				t.Fatalf("a repeated approval = %+v, %v", res, err)
			}
			tick(t0.Add(1000 * 24 * time.Hour))
			if got := e.state(t, d.ID); got != Sealed {
				t.Fatalf("state with one approval = %s", got)
			}
			res, err = e.svc.Approve(ctx, as("carol"), d.ID, "carol", sig("carol"))
			if err != nil || !res.Released || res.Approvals != 2 {
				t.Fatalf("second approval = %+v, %v", res, err)
			}
			checkReleased(t, e, d.ID, "quorum")
			_, err = e.svc.Approve(ctx, as("bob"), d.ID, "bob", sig("bob"))
			wantKind(t, err, errs.Conflict)
		})

		t.Run("the Atom feed announces every release", func(t *testing.T) {
			b, err := e.svc.ReleasesFeed(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if n := strings.Count(string(b), "<entry>"); n != 4 {
				t.Fatalf("feed has %d entries, want 4:\n%s", n, b)
			}
		})
	})
}

func TestTwoSchedulersReleaseADeadManDepositExactlyOnce(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		d, _ := e.deposit(t, acme, "demo-cam", "dead-man=1d,1h", demoFiles)
		d2, _ := e.deposit(t, acme, "other-cam", "dead-man=1d,1h", demoFiles)
		// Two replicas: their own connections, their own services.
		replicas := []*Service{e.svc, e.service(t, openDB(t, e.dbURL), Options{})}
		due := t0.Add(25 * time.Hour)
		e.clock.Set(due)

		var wg sync.WaitGroup
		results := make([]TickResult, 2)
		errors := make([]error, 2)
		for i, r := range replicas {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sc := r.Scheduler([]string{"replica-a", "replica-b"}[i])
				for range 5 {
					res, err := sc.TickResult(ctx, due)
					results[i].Released = append(results[i].Released, res.Released...)
					if err != nil {
						errors[i] = err
					}
				}
			}()
		}
		wg.Wait()
		for i, err := range errors {
			if err != nil {
				t.Fatalf("replica %d: %v", i, err)
			}
		}
		if n := len(results[0].Released) + len(results[1].Released); n != 2 {
			t.Fatalf("releases reported = %v and %v, want the two deposits once each", results[0].Released, results[1].Released)
		}
		for _, id := range []string{d.ID, d2.ID} {
			if got := strings.Count(strings.Join(e.eventKinds(t, id), ","), "released"); got != 1 {
				t.Fatalf("deposit %s has %d release events", id, got)
			}
		}

		t.Run("the state change alone keeps a release exactly-once without the lease", func(t *testing.T) {
			d3, _ := e.deposit(t, acme, "demo-cam", "dead-man=1d,1h", demoFiles)
			dep, err := e.svc.load(ctx, e.db.DB, d3.ID)
			if err != nil {
				t.Fatal(err)
			}
			var mu sync.Mutex
			won := 0
			var wg sync.WaitGroup
			for i, r := range replicas {
				wg.Add(1)
				go func() {
					defer wg.Done()
					ok, err := r.release(ctx, dep, due, []string{"a", "b"}[i], "dead-man")
					if err != nil {
						t.Error(err)
					}
					if ok {
						mu.Lock()
						won++
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			if won != 1 {
				t.Fatalf("%d replicas released, want 1", won)
			}
			if got := strings.Count(strings.Join(e.eventKinds(t, d3.ID), ","), "released"); got != 1 {
				t.Fatalf("%d release events", got)
			}
		})
	})
}
