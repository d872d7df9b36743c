package handover_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"testing"
	"time"

	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/registry/handover"
)

// FuzzVerify feeds hostile envelopes to the parsers a device and the
// escrow run on outside input: nothing panics, every refusal has a kind,
// and nothing verifies with a key that did not sign it.
func FuzzVerify(f *testing.F) {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	env, err := handover.Sign(context.Background(), key, "", nil, statement())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(env)
	f.Add([]byte(`{"payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":[]}`))
	f.Add([]byte(`{}`))
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	f.Fuzz(func(t *testing.T, b []byte) {
		ctx := context.Background()
		if _, err := handover.ReadUnverified(b); err != nil && errs.KindOf(err) == errs.Internal {
			t.Fatalf("ReadUnverified: an error without a kind: %v", err)
		}
		if _, err := handover.VerifyDeclaredKey(ctx, b, time.Now()); err != nil && errs.KindOf(err) == errs.Internal {
			t.Fatalf("VerifyDeclaredKey: an error without a kind: %v", err)
		}
		if _, err := handover.Verify(ctx, b, handover.Trust{Key: other.Public()}, time.Now()); err == nil {
			t.Fatal("an envelope verified with a key that never signed anything")
		}
	})
}
