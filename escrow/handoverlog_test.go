package escrow

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/afterlife-oss/afterlife/escrow/wire"
)

func TestAHandoverThatTookEffectIsLoggedRightAfterItsReleaseAndARevokedOneIsNot(t *testing.T) {
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

		revoked, _ := e.deposit(t, acme, "demo-cam", "on=2099-01-01", map[string]string{"docs/a.md": "a", wire.HandoverFile: signedHandover(t, key, "usb:demo:cam")})
		if _, err := svc.RevokeHandover(ctx, acme, revoked.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := svc.Evaluate(ctx, revoked.ID, time.Date(2099, 1, 2, 0, 0, 0, 0, time.UTC), "test"); err != nil {
			t.Fatal(err)
		}
		statement := signedHandover(t, key, "usb:demo:cam2")
		d, _ := e.deposit(t, acme, "demo-cam", "immediate", map[string]string{"docs/a.md": "a", wire.HandoverFile: statement, wire.BridgeFile: "bridge image"})

		evs, err := svc.LogEvents(ctx, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		var types []string
		for _, ev := range evs {
			if ev.Type == HandoverEntryType {
				types = append(types, ev.Subject)
				want := map[string]any{"deposit": d.ID, "product": "demo-cam", "root_name": "1.root.json", "root_sha256": rootSHA}
				for k, v := range want {
					if ev.Fields[k] != v {
						t.Errorf("handover entry field %s = %v, want %v", k, ev.Fields[k], v)
					}
				}
				if ids, _ := ev.Fields["device_ids"].([]string); !slices.Equal(ids, []string{"usb:demo:cam2"}) {
					t.Errorf("handover entry device ids = %v", ev.Fields["device_ids"])
				}
				if fp, _ := ev.Fields["vendor_key"].(string); !strings.HasPrefix(fp, "sha256:") {
					t.Errorf("handover entry vendor key = %v", ev.Fields["vendor_key"])
				}
				if s, _ := ev.Fields["statement_sha256"].(string); len(s) != 64 {
					t.Errorf("handover entry statement digest = %v", ev.Fields["statement_sha256"])
				}
			}
		}
		if !slices.Equal(types, []string{"demo-cam"}) {
			t.Fatalf("handover entries about %v; want one, about demo-cam (the revoked statement is never logged)", types)
		}
		for i, ev := range evs {
			if ev.Type == HandoverEntryType && (i == 0 || evs[i-1].Type != "deposit.released" || evs[i-1].Fields["deposit"] != d.ID) {
				t.Fatalf("the handover entry does not follow its deposit's release entry: %+v", evs)
			}
		}
		seqs, err := svc.HandoverLogSeqs(ctx, []string{d.ID, revoked.ID})
		if err != nil || len(seqs) != 1 || seqs[d.ID] == 0 {
			t.Fatalf("handover log seqs = %v, %v", seqs, err)
		}
		i := slices.IndexFunc(pub.published(), func(h ReleasedHandover) bool { return h.Deposit == d.ID })
		if i < 0 {
			t.Fatal("the released statement was not published")
		}
		if b := pub.published()[i].Bridge; b == nil || b.Path != wire.BridgeFile || b.Size != int64(len("bridge image")) {
			t.Fatalf("the published handover's bridge image = %+v", b)
		}
	})
}
