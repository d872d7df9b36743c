package receipt

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"testing"
)

func TestAVersionOneReceiptWithoutRightsStillVerifies(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	// A receipt signed before rights classes existed: the exact bytes a
	// version 1 server wrote.
	payload := []byte(`{"version":1,"deposit":"dep_1","product":"demo-cam","org":"acme","policy":"immediate","manifest_digest":"sha256:00","files":3,"total_size":42,"committed_at":"2026-01-02T03:04:05Z","key_id":"` + KeyID(pub) + `"}`)
	sig := ed25519.Sign(key, append([]byte(domain), payload...))
	old, _ := json.Marshal(Signed{Payload: base64.StdEncoding.EncodeToString(payload), Signature: base64.StdEncoding.EncodeToString(sig), KeyID: KeyID(pub)})
	r, err := Verify(pub, old)
	if err != nil {
		t.Fatalf("a version 1 receipt no longer verifies: %v", err)
	}
	if r.Version != 1 || r.Files != 3 || r.Rights != nil {
		t.Fatalf("verified = %+v", r)
	}
}

func TestANewReceiptListsTheRightsClassesAndTheyCannotBeChanged(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	s, err := Sign(key, Receipt{Deposit: "dep_2", Files: 2,
		Rights:  []Rule{{Pattern: "**", Rights: "public"}, {Pattern: "drivers/**", Rights: "build-only"}},
		Classes: map[string]int{"public": 1, "build-only": 1, "private": 0}, GrantSHA256: "ab"})
	if err != nil {
		t.Fatal(err)
	}
	good, _ := json.Marshal(s)
	r, err := Verify(pub, good)
	if err != nil {
		t.Fatal(err)
	}
	if r.Version != 2 || len(r.Rights) != 2 || r.Rights[1].Rights != "build-only" || r.Classes["build-only"] != 1 || r.GrantSHA256 != "ab" {
		t.Fatalf("verified = %+v", r)
	}
	r.Rights[1].Rights = "public"
	p, _ := json.Marshal(r)
	s.Payload = base64.StdEncoding.EncodeToString(p)
	bad, _ := json.Marshal(s)
	if _, err := Verify(pub, bad); err == nil {
		t.Fatal("a receipt whose build-only rule was made public verified")
	}
}
