package tuf

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/afterlife-oss/afterlife/internal/errs"
)

// Re-homing: a new operator carries a registry on from a copy of its
// repository (a verified mirror, docs/mirror.md), without any of the old
// operator's online keys. The root's custodians sign the next root
// version, which keeps the root keys and threshold and lists online keys
// the new server made (ProposeRehome); Adopt publishes it on the copied
// repository and re-signs everything the online keys sign, so a device
// holding any root of the chain walks N.root.json → N+1.root.json to the
// new registry.

// ProposeRehome returns the next root version after current (the newest
// root of the copied chain) as an unsigned proposal: the same root keys
// and threshold, new targets, snapshot and timestamp keys, and fields as
// its custom fields instead of the old root's (whose afterlife_log names
// the old operator's log, whose key the new server does not hold: a device
// would refuse every release the new log records). The new keys are kept
// in keyDir as
// "<role>.key.proposed-<N+1>" until Adopt publishes the signed root.
func ProposeRehome(current []byte, keyDir string, expires time.Time, fields map[string]any) ([]byte, error) {
	cur, err := (&metadata.Metadata[metadata.RootType]{}).FromBytes(current)
	if err != nil {
		return nil, errs.Wrap(errs.Invalid, err, "tuf: the current root is not TUF root metadata")
	}
	if err := os.MkdirAll(keyDir, 0o700); err != nil {
		return nil, fmt.Errorf("tuf: create key dir: %w", err)
	}
	root, err := copyRoot(cur)
	if err != nil {
		return nil, err
	}
	root.Signed.Version++
	root.Signed.Expires = expires.UTC().Truncate(time.Second)
	root.Signed.UnrecognizedFields = nil
	if len(fields) > 0 {
		root.Signed.UnrecognizedFields = fields
	}
	root.ClearSignatures()
	for _, role := range onlineRoles {
		k, err := generateRoleKey()
		if err != nil {
			return nil, err
		}
		for _, id := range append([]string(nil), root.Signed.Roles[role].KeyIDs...) {
			if err := root.Signed.RevokeKey(id, role); err != nil {
				return nil, fmt.Errorf("tuf: propose re-homing: %w", err)
			}
		}
		if err := root.Signed.AddKey(k.pub, role); err != nil {
			return nil, fmt.Errorf("tuf: propose re-homing: %w", err)
		}
		root.Signed.Roles[role].Threshold = 1
		if err := writeKey(proposedKeyPath(keyDir, role, root.Signed.Version), k); err != nil {
			return nil, err
		}
	}
	b, err := root.ToBytes(true)
	if err != nil {
		return nil, fmt.Errorf("tuf: encode proposal: %w", err)
	}
	return b, nil
}

// Adopt opens a repository copied into store from another operator's
// (every root version, the current timestamp, snapshot, targets and hashed
// bins), whose online keys this server does not hold, by publishing
// signedRoot: the next root version, signed by a threshold of the copied
// root's keys and of its own (as PublishRoot checks), listing for each
// online role the key ProposeRehome left in keyDir. Targets, every hashed
// bin, the snapshot and the timestamp are re-signed with the new keys, in
// the order clients read them (the timestamp last).
func Adopt(ctx context.Context, store Store, keyDir string, signedRoot []byte, o Options) (*Repo, error) {
	if len(signedRoot) > maxRootSize {
		return nil, errs.E(errs.TooLarge, "tuf: root proposal is %d bytes, limit %d", len(signedRoot), maxRootSize)
	}
	root, err := (&metadata.Metadata[metadata.RootType]{}).FromBytes(signedRoot)
	if err != nil {
		return nil, errs.Wrap(errs.Invalid, err, "tuf: the signed root is not TUF root metadata")
	}
	r := &Repo{store: store, keyDir: keyDir, o: o.withDefaults(), keys: map[string]*roleKey{}}
	r.mu.Lock()
	defer r.mu.Unlock()
	st, err := r.load(ctx)
	if err != nil {
		return nil, err
	}
	newKeys, err := adoptable(st.root, root, keyDir, r.o.Now())
	if err != nil {
		return nil, err
	}
	next := root.Signed.Version
	if err := r.publishRoot(ctx, st, root, newKeys); err != nil {
		return nil, fmt.Errorf("tuf: adopt the copied repository with root version %d: %w", next, err)
	}
	for _, role := range onlineRoles {
		if err := installProposed(keyDir, role, proposedKeyPath(keyDir, role, next)); err != nil {
			return nil, err
		}
	}
	dropStaleProposals(keyDir, next)
	r.o.Logger.Info("tuf repository adopted: the custodians' root lists this server's online keys", "root_version", next)
	return r, nil
}

// CheckAdoptable says whether Adopt would publish signedRoot on a copy of
// the repository whose newest root is current, before anything is copied:
// its signatures, version and expiry, and the online keys it lists.
func CheckAdoptable(current, signedRoot []byte, keyDir string, now time.Time) error {
	cur, err := (&metadata.Metadata[metadata.RootType]{}).FromBytes(current)
	if err != nil {
		return errs.Wrap(errs.Invalid, err, "tuf: the copied root is not TUF root metadata")
	}
	root, err := (&metadata.Metadata[metadata.RootType]{}).FromBytes(signedRoot)
	if err != nil {
		return errs.Wrap(errs.Invalid, err, "tuf: the signed root is not TUF root metadata")
	}
	_, err = adoptable(cur, root, keyDir, now)
	return err
}

// adoptable checks root as the next version after cur (checkNextRoot) and
// that it lists, for each online role, a new key this server proposed;
// it returns those keys.
func adoptable(cur, root *metadata.Metadata[metadata.RootType], keyDir string, now time.Time) (map[string]*roleKey, error) {
	if err := checkNextRoot(cur, root, now); err != nil {
		return nil, err
	}
	next := root.Signed.Version
	newKeys := map[string]*roleKey{}
	for _, role := range onlineRoles {
		rl := root.Signed.Roles[role]
		if rl == nil || len(rl.KeyIDs) != 1 || rl.Threshold != 1 {
			return nil, errs.E(errs.Invalid, "tuf: root version %d: the server signs %s with one key of threshold 1", next, role)
		}
		k, err := readKey(proposedKeyPath(keyDir, role, next))
		if err != nil || k.id != rl.KeyIDs[0] {
			return nil, errs.E(errs.Invalid, "tuf: root version %d lists a %s key (%.12s…) this server did not propose: re-homing needs the root the custodians signed from this server's proposal", next, role, rl.KeyIDs[0])
		}
		if listedIn(cur, role)(k.id) {
			return nil, errs.E(errs.Invalid, "tuf: root version %d keeps the copied root's %s key", next, role)
		}
		newKeys[role] = k
	}
	return newKeys, nil
}
