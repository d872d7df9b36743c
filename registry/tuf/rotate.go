package tuf

import (
	"context"
	"fmt"
	"slices"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/afterlife-oss/afterlife/internal/errs"
)

// Rotate replaces one role's key (root, targets, snapshot or timestamp).
// It needs root.key in the key dir, since every rotation publishes a new
// root version: signed by the old root key, and by the new one too when
// root itself rotates, so that a client holding any older root walks the
// chain N.root.json → N+1.root.json. It then re-signs what the new key
// must sign (for targets: targets and every hashed bin; for snapshot: the
// snapshot; always: the timestamp). The replaced key file is kept as
// "<role>.key.old.<n>".
func (r *Repo) Rotate(ctx context.Context, role string) error {
	if !slices.Contains(metadata.TOP_LEVEL_ROLE_NAMES[:], role) {
		return errs.E(errs.Invalid, "tuf: cannot rotate %q: roles are root, targets, snapshot and timestamp", role)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	st, err := r.load(ctx)
	if err != nil {
		return err
	}
	if err := r.syncKeys(st); err != nil {
		return err
	}
	if err := settleRotation(r.keyDir, metadata.ROOT, listedIn(st.root, metadata.ROOT)); err != nil {
		return err
	}
	rootKey, err := readKey(keyPath(r.keyDir, metadata.ROOT))
	if errs.Is(err, errs.NotFound) {
		return errs.E(errs.Invalid, "tuf: rotate %s: root.key is not in the key dir; bring the offline root key back for the rotation", role)
	}
	if err != nil {
		return err
	}
	if !listedIn(st.root, metadata.ROOT)(rootKey.id) {
		return errs.E(errs.Invalid, "tuf: rotate %s: root.key in the key dir is not the key the current root trusts", role)
	}

	newKey, err := generateRoleKey()
	if err != nil {
		return err
	}
	// Written before the new root is published, so the key is never lost;
	// settleRotation finishes or discards it if we stop half-way.
	if err := writeKey(keyPath(r.keyDir, role)+".new", newKey); err != nil {
		return err
	}

	root, err := copyRoot(st.root)
	if err != nil {
		return err
	}
	root.Signed.Version++
	root.Signed.Expires = r.expires(r.o.RootExpiry)
	for _, id := range slices.Clone(root.Signed.Roles[role].KeyIDs) {
		if err := root.Signed.RevokeKey(id, role); err != nil {
			return fmt.Errorf("tuf: rotate %s: %w", role, err)
		}
	}
	if err := root.Signed.AddKey(newKey.pub, role); err != nil {
		return fmt.Errorf("tuf: rotate %s: %w", role, err)
	}
	signers := []*roleKey{rootKey}
	if role == metadata.ROOT {
		signers = append(signers, newKey)
	}
	if _, err := signMeta(root, signers...); err != nil {
		return err
	}

	ch := change{root: root}
	keys := map[string]*roleKey{}
	for k, v := range r.keys {
		keys[k] = v
	}
	switch role {
	case metadata.SNAPSHOT:
		keys[role] = newKey
		ch.snapshot = true
	case metadata.TIMESTAMP:
		keys[role] = newKey
	case metadata.TARGETS:
		keys[role] = newKey
		d := st.targets.Signed.Delegations
		d.Keys = map[string]*metadata.Key{newKey.id: newKey.pub}
		d.SuccinctRoles.KeyIDs = []string{newKey.id}
		ch.targets = true
		ch.bins = map[string]*metadata.Metadata[metadata.TargetsType]{}
		for _, name := range d.SuccinctRoles.GetRoles() {
			b, err := r.loadBin(ctx, st, name)
			if err != nil {
				return err
			}
			ch.bins[name] = b
		}
	}
	r.keys = keys
	if err := r.commit(ctx, st, ch); err != nil {
		// Whatever reached the store decides which key is current; the
		// next mutation re-reads it and settles the key files.
		r.keys = map[string]*roleKey{}
		return fmt.Errorf("tuf: rotate %s: %w", role, err)
	}
	if err := settleRotation(r.keyDir, role, listedIn(root, role)); err != nil {
		return err
	}
	r.o.Logger.Info("tuf key rotated", "role", role, "key", newKey.id, "root_version", root.Signed.Version)
	return nil
}

func copyRoot(m *metadata.Metadata[metadata.RootType]) (*metadata.Metadata[metadata.RootType], error) {
	b, err := m.ToBytes(false)
	if err != nil {
		return nil, fmt.Errorf("tuf: copy root: %w", err)
	}
	return (&metadata.Metadata[metadata.RootType]{}).FromBytes(b)
}
