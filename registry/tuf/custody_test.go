package tuf

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/afterlife-oss/afterlife/internal/errs"
)

// custodians makes n custodian key files in their own directories and
// returns the private key paths and the public keys.
func custodians(t *testing.T, n int) ([]string, []*metadata.Key) {
	t.Helper()
	var files []string
	var keys []*metadata.Key
	for range n {
		priv, pub, _, err := GenerateCustodianKey()
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), "custodian.key")
		if err := os.WriteFile(path, priv, 0o600); err != nil {
			t.Fatal(err)
		}
		k, err := ParseRootKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, path)
		keys = append(keys, k)
	}
	return files, keys
}

// editRoot changes a proposal's signed fields and keeps its signatures.
func editRoot(t *testing.T, proposal []byte, edit func(*metadata.RootType)) []byte {
	t.Helper()
	m, err := (&metadata.Metadata[metadata.RootType]{}).FromBytes(proposal)
	if err != nil {
		t.Fatal(err)
	}
	edit(&m.Signed)
	b, err := m.ToBytes(false)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func sign(t *testing.T, proposal []byte, keyFile string) []byte {
	t.Helper()
	out, _, err := SignRootProposal(proposal, keyFile)
	if err != nil {
		t.Fatalf("sign with %s: %v", keyFile, err)
	}
	return out
}

// thresholdRoot moves f's single-key root to 2 of 3 custodians, signed by
// the old root key and two custodians on separate copies, and returns the
// custodians' key files.
func thresholdRoot(t *testing.T, f *fixture) []string {
	t.Helper()
	files, keys := custodians(t, 3)
	proposal, err := ProposeRoot(f.meta("root.json"), keys, 2, f.clock.now().Add(365*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	a := sign(t, sign(t, proposal, filepath.Join(f.keyDir, "root.key")), files[0])
	b := sign(t, proposal, files[2])
	merged, err := MergeRootProposals(a, b)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.repo.PublishRoot(f.ctx, merged); err != nil {
		t.Fatalf("PublishRoot: %v", err)
	}
	return files
}

func TestASingleKeyRootMovesToCustodiansAndClientsWalkToIt(t *testing.T) {
	f := newFixture(t, NewMemStore())
	root1 := f.meta("1.root.json")
	cache := t.TempDir()
	first := f.publish("p/1/a", "a")
	if _, err := f.client(root1, cache).GetTargetInfo(first.Path); err != nil {
		t.Fatal(err)
	}
	if c, _ := f.repo.Custody(f.ctx); !c.SingleKey() {
		t.Fatalf("the default root is not a single server key: %+v", c)
	}
	thresholdRoot(t, f)
	c, err := f.repo.Custody(f.ctx)
	if err != nil || c.Version != 2 || c.Threshold != 2 || c.Keys != 3 || c.ServerKey || c.SingleKey() {
		t.Fatalf("custody after the move = %+v, %v", c, err)
	}
	second := f.publish("p/2/a", "b")
	for name, dir := range map[string]string{"a client that cached metadata": cache, "a fresh client from 1.root": t.TempDir()} {
		up := f.client(root1, dir)
		for _, tg := range []Target{first, second} {
			if _, err := up.GetTargetInfo(tg.Path); err != nil {
				t.Fatalf("%s: %s: %v", name, tg.Path, err)
			}
		}
		if v := up.GetTrustedMetadataSet().Root.Signed.Version; v != 2 {
			t.Fatalf("%s trusts root v%d, want v2", name, v)
		}
	}
}

func TestARootProposalWithoutEnoughSignaturesIsRefused(t *testing.T) {
	f := newFixture(t, NewMemStore())
	files, keys := custodians(t, 3)
	expires := f.clock.now().Add(365 * 24 * time.Hour)
	proposal, err := ProposeRoot(f.meta("root.json"), keys, 2, expires)
	if err != nil {
		t.Fatal(err)
	}
	oldRoot := filepath.Join(f.keyDir, "root.key")
	stale := editRoot(t, proposal, func(r *metadata.RootType) { r.Version = 3 })
	expired, _ := ProposeRoot(f.meta("root.json"), keys, 2, f.clock.now().Add(-time.Hour))
	cases := []struct {
		name     string
		proposal []byte
		want     errs.Kind
		says     string
	}{
		{"one signature of the two the new root needs", sign(t, sign(t, proposal, oldRoot), files[0]), errs.Invalid, "not signed by 2 of its own 3 root keys: it has 1 valid signatures"},
		{"custodians' signatures without the current root's", sign(t, sign(t, proposal, files[0]), files[1]), errs.Invalid, "not signed by 1 of the 1 keys of the current root version 1"},
		{"a signature twice by one custodian", sign(t, sign(t, sign(t, proposal, oldRoot), files[0]), files[0]), errs.Invalid, "not signed by 2"},
		{"a version that is not the next", sign(t, sign(t, sign(t, stale, oldRoot), files[0]), files[1]), errs.Conflict, "propose version 2"},
		{"an expired root", sign(t, sign(t, sign(t, expired, oldRoot), files[0]), files[1]), errs.Invalid, "expired"},
		{"a tampered root", editRoot(t, sign(t, sign(t, sign(t, proposal, oldRoot), files[0]), files[1]), func(r *metadata.RootType) { r.Roles["root"].Threshold = 1 }), errs.Invalid, "not signed"},
	}
	for _, c := range cases {
		t.Run(c.name+" is refused", func(t *testing.T) {
			_, err := f.repo.PublishRoot(f.ctx, c.proposal)
			if !errs.Is(err, c.want) || !strings.Contains(err.Error(), c.says) {
				t.Fatalf("err = %v, want %v saying %q", err, c.want, c.says)
			}
			if got := f.meta("root.json"); !bytes.Equal(got, f.meta("1.root.json")) {
				t.Fatal("a refused proposal changed root.json")
			}
		})
	}
	t.Run("copies of different proposals do not merge", func(t *testing.T) {
		other, _ := ProposeRoot(f.meta("root.json"), keys[:2], 2, expires)
		if _, err := MergeRootProposals(sign(t, proposal, files[0]), sign(t, other, files[1])); !errs.Is(err, errs.Invalid) {
			t.Fatalf("err = %v, want Invalid", err)
		}
	})
}

func TestUnderCustodiansAnOnlineKeyRotatesThroughASignedProposal(t *testing.T) {
	f := newFixture(t, NewMemStore())
	root1 := f.meta("1.root.json")
	files := thresholdRoot(t, f)
	first := f.publish("p/1/a", "a")

	if err := f.repo.Rotate(f.ctx, "timestamp"); !errs.Is(err, errs.Invalid) || !strings.Contains(err.Error(), "threshold of 2 of 3") {
		t.Fatalf("Rotate under custodians: err = %v, want Invalid naming the threshold", err)
	}
	if _, err := f.repo.RotateOrPropose(f.ctx, "root"); !errs.Is(err, errs.Invalid) || !strings.Contains(err.Error(), "admin root propose") {
		t.Fatalf("rotating root under custodians: err = %v", err)
	}
	for i, role := range []string{"targets", "timestamp"} {
		want := int64(3 + i)
		proposal, err := f.repo.RotateOrPropose(f.ctx, role)
		if err != nil || proposal == nil {
			t.Fatalf("RotateOrPropose %s: %v (proposal %d bytes)", role, err, len(proposal))
		}
		if c, _ := f.repo.Custody(f.ctx); c.Version != want-1 {
			t.Fatalf("a proposal published root v%d", c.Version)
		}
		if _, err := f.repo.PublishRoot(f.ctx, sign(t, proposal, files[1])); !errs.Is(err, errs.Invalid) {
			t.Fatalf("%s rotation with one custodian: err = %v", role, err)
		}
		if _, err := f.repo.PublishRoot(f.ctx, sign(t, sign(t, proposal, files[1]), files[2])); err != nil {
			t.Fatalf("publish %s rotation: %v", role, err)
		}
		if _, err := os.Stat(filepath.Join(f.keyDir, role+".key.old.1")); err != nil {
			t.Fatalf("the replaced %s key was not kept: %v", role, err)
		}
	}
	second := f.publish("p/2/a", "b")
	up := f.client(root1, t.TempDir())
	for _, tg := range []Target{first, second} {
		if _, err := up.GetTargetInfo(tg.Path); err != nil {
			t.Fatalf("%s: %v", tg.Path, err)
		}
	}
	if v := up.GetTrustedMetadataSet().Root.Signed.Version; v != 4 {
		t.Fatalf("client trusts root v%d, want v4", v)
	}
	if _, err := Open(f.ctx, f.store, f.keyDir, f.clock.now); err != nil {
		t.Fatalf("reopening with the rotated keys: %v", err)
	}
}

func TestAProposedKeyIsInstalledWhenItsRootWasPublishedButNotInstalled(t *testing.T) {
	f := newFixture(t, NewMemStore())
	files := thresholdRoot(t, f)
	proposal, err := f.repo.RotateOrPropose(f.ctx, "snapshot")
	if err != nil {
		t.Fatal(err)
	}
	pending := filepath.Join(f.keyDir, "snapshot.key.proposed-3")
	keep, err := os.ReadFile(pending)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.repo.PublishRoot(f.ctx, sign(t, sign(t, proposal, files[0]), files[1])); err != nil {
		t.Fatal(err)
	}
	// Play a stop between publishing and installing the key.
	cur, _ := os.ReadFile(filepath.Join(f.keyDir, "snapshot.key.old.1"))
	if err := os.WriteFile(filepath.Join(f.keyDir, "snapshot.key"), cur, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pending, keep, 0o600); err != nil {
		t.Fatal(err)
	}
	repo, err := Open(f.ctx, f.store, f.keyDir, f.clock.now)
	if err != nil {
		t.Fatalf("Open after a stop: %v", err)
	}
	if got, _ := os.ReadFile(filepath.Join(f.keyDir, "snapshot.key")); !bytes.Equal(got, keep) {
		t.Fatal("the published proposed key was not installed")
	}
	f.repo = repo
	f.publish("p/3/a", "c")
}
