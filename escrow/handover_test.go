package escrow

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/afterlife-oss/afterlife/escrow/wire"
	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/registry/handover"
)

// handoverChecks is the registry's side, as cmd/afterlife wires it, with
// the registry's root versions and device ids in memory.
type handoverChecks struct {
	roots     map[string]int64
	deviceIDs map[string][]string
}

func (h handoverChecks) Verify(ctx context.Context, env []byte, at time.Time) (HandoverStatement, error) {
	v, err := handover.VerifyDeclaredKey(ctx, env, at)
	if err != nil {
		return HandoverStatement{}, err
	}
	return HandoverStatement{Product: v.Predicate.Product, DeviceIDs: v.Predicate.DeviceIDs, VendorKey: v.Predicate.VendorKey.Fingerprint,
		RootName: v.Root.Name, RootSHA256: v.Root.SHA256, EnvelopeSHA256: v.EnvelopeSHA256}, nil
}

func (h handoverChecks) RootVersion(_ context.Context, sum string) (int64, error) {
	if v, ok := h.roots[sum]; ok {
		return v, nil
	}
	return 0, errs.E(errs.NotFound, "no such root")
}

func (h handoverChecks) DeviceIDs(_ context.Context, product string) ([]string, error) {
	return h.deviceIDs[product], nil
}

// publisher records the statements handed to it.
type publisher struct {
	mu  sync.Mutex
	got []ReleasedHandover
}

func (p *publisher) PublishHandover(_ context.Context, h ReleasedHandover) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.got = append(p.got, h)
	return nil
}

func (p *publisher) published() []ReleasedHandover {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]ReleasedHandover(nil), p.got...)
}

var rootSHA = strings.Repeat("ab", 32)

func signedHandover(t *testing.T, key ed25519.PrivateKey, ids ...string) string {
	t.Helper()
	env, err := handover.Sign(context.Background(), key, "", nil, handover.Statement{
		Root: handover.Root{Name: "1.root.json", SHA256: rootSHA},
		Predicate: handover.Predicate{Product: "demo-cam", DeviceIDs: ids,
			TakesEffect: handover.TakesEffectOnRelease, Scope: handover.ScopeUpdates},
	})
	if err != nil {
		t.Fatal(err)
	}
	return string(env)
}

func TestTheFirstHandoverWinsARevokedOneFreesItsIdsAndOnlyReleasedOnesArePublished(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		pub := &publisher{}
		consumer := &PublishHandovers{Publisher: pub}
		svc := e.service(t, e.db, Options{
			Handover: handoverChecks{
				roots:     map[string]int64{rootSHA: 1},
				deviceIDs: map[string][]string{"demo-cam": {"usb:demo:cam", "usb:demo:cam2"}},
			},
			AfterRelease: map[string]AfterRelease{"hand-over": e.products, "handover-publish": consumer},
		})
		consumer.Escrow = svc
		e.svc = svc
		_, key, _ := ed25519.GenerateKey(rand.Reader)
		_, rivalKey, _ := ed25519.GenerateKey(rand.Reader)
		files := func(statement string) map[string]string {
			return map[string]string{"docs/board.pdf": "%PDF board", wire.HandoverFile: statement}
		}

		t.Run("of two uploads claiming one device id, the first sealed wins", func(t *testing.T) {
			start := func(statement string) Deposit {
				d, err := svc.Create(ctx, acme, CreateRequest{Product: "demo-cam", Policy: "on=2099-01-01", Manifest: entries(files(statement))})
				if err != nil {
					t.Fatal(err)
				}
				for p, c := range files(statement) {
					if _, err := svc.PutFile(ctx, acme, d.ID, p, strings.NewReader(c)); err != nil {
						t.Fatalf("put %s: %v", p, err)
					}
				}
				return d
			}
			first, second := start(signedHandover(t, key, "usb:demo:cam")), start(signedHandover(t, rivalKey, "usb:demo:cam"))
			if _, err := svc.Commit(ctx, acme, first.ID); err != nil {
				t.Fatal(err)
			}
			_, err := svc.Commit(ctx, acme, second.ID)
			wantKind(t, err, errs.Conflict)
			if !strings.Contains(err.Error(), "already handed over by an earlier statement") || e.state(t, second.ID) != Uploading {
				t.Fatalf("the second seal: %v, state %s", err, e.state(t, second.ID))
			}
			t.Run("the vendor revokes the sealed statement and the rival can seal", func(t *testing.T) {
				h, err := svc.RevokeHandover(ctx, acme, first.ID)
				if err != nil || h.State != "revoked" {
					t.Fatalf("revoke: %+v %v", h, err)
				}
				_, err = svc.RevokeHandover(ctx, globex, first.ID)
				wantKind(t, err, errs.NotFound)
				if _, err := svc.Commit(ctx, acme, second.ID); err != nil {
					t.Fatalf("the rival after the revocation: %v", err)
				}
			})
			t.Run("a revoked statement is never published, even once released", func(t *testing.T) {
				if _, err := svc.Evaluate(ctx, first.ID, time.Date(2099, 1, 2, 0, 0, 0, 0, time.UTC), "test"); err != nil {
					t.Fatal(err)
				}
				if e.state(t, first.ID) != Released {
					t.Fatalf("deposit %s is %s", first.ID, e.state(t, first.ID))
				}
				for _, h := range pub.published() {
					if h.Deposit == first.ID {
						t.Fatal("a revoked statement was published")
					}
				}
			})
		})

		t.Run("a released statement is handed to the publisher with its bytes", func(t *testing.T) {
			statement := signedHandover(t, key, "usb:demo:cam2")
			d, _ := e.deposit(t, acme, "demo-cam", "immediate", files(statement))
			var got []ReleasedHandover
			for _, h := range pub.published() {
				if h.Deposit == d.ID {
					got = append(got, h)
				}
			}
			if len(got) != 1 || !bytes.Equal(got[0].Envelope, []byte(statement)) || got[0].RootVersion != 1 || got[0].DeviceIDs[0] != "usb:demo:cam2" {
				t.Fatalf("published = %+v", got)
			}
			_, err := svc.RevokeHandover(ctx, acme, d.ID)
			wantKind(t, err, errs.Conflict)
		})
	})
}
