package handover_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"time"

	"github.com/afterlife-oss/afterlife/registry/handover"
)

// A vendor signs a statement handing a product's devices to a registry
// root; a device that holds only the vendor's public key verifies it and
// learns which root to pin.
func ExampleVerify() {
	ctx := context.Background()
	vendorPub, vendorKey, _ := ed25519.GenerateKey(rand.Reader)

	root := []byte(`{"signed":{"_type":"root","version":2},"signatures":[]}`)
	subject, _ := handover.RootSubject(root)
	envelope, err := handover.Sign(ctx, vendorKey, handover.Ed25519, nil, handover.Statement{
		Root: subject,
		Predicate: handover.Predicate{
			Product:     "acme-cam200",
			DeviceIDs:   []string{"usb:1d6b:0104"},
			TakesEffect: handover.TakesEffectOnRelease,
			Scope:       handover.ScopeUpdates,
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}

	// On the device: the vendor key is all it trusts. The time is that of
	// the statement's log entry; it matters only for certificate chains.
	v, err := handover.Verify(ctx, envelope, handover.Trust{Key: vendorPub}, time.Time{})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(v.Predicate.Product, "is handed over to", v.Root.Name, "for", v.Predicate.DeviceIDs)
	fmt.Println("pin it if its sha256 is", v.Root.SHA256 == subject.SHA256)
	// Output:
	// acme-cam200 is handed over to 2.root.json for [usb:1d6b:0104]
	// pin it if its sha256 is true
}
