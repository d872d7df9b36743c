package tuf

import (
	"context"
	"fmt"
	"slices"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/afterlife-oss/afterlife/internal/errs"
)

// Rotate replaces one role's key (root, targets, snapshot or timestamp)
// now. It needs root.key in the key dir, and a root that this one key may
// sign alone (threshold 1), since every rotation publishes a new root
// version: signed by the old root key, and by the new one too when root
// itself rotates, so that a client holding any older root walks the chain
// N.root.json → N+1.root.json. It then re-signs what the new key must
// sign (for targets: targets and every hashed bin; for snapshot: the
// snapshot; always: the timestamp). The replaced key file is kept as
// "<role>.key.old.<n>". When the server cannot sign the root alone,
// RotateOrPropose makes a proposal instead.
func (r *Repo) Rotate(ctx context.Context, role string) error {
	_, err := r.rotate(ctx, role, false)
	return err
}

// RotateOrPropose rotates an online key (targets, snapshot, timestamp)
// like Rotate when the server may sign the root alone. Otherwise (the
// root is a threshold of custodians' keys, or its one key is offline) it
// generates the new key, keeps it as "<role>.key.proposed-<N>", and
// returns root version N, unsigned but by the keys the server holds, as a
// proposal for the root's key holders to sign offline (SignRootProposal)
// and an admin to publish (PublishRoot). The key becomes current when
// that root is published; until then nothing changes. proposal is nil when
// the rotation was published at once.
func (r *Repo) RotateOrPropose(ctx context.Context, role string) (proposal []byte, err error) {
	return r.rotate(ctx, role, true)
}

func (r *Repo) rotate(ctx context.Context, role string, mayPropose bool) ([]byte, error) {
	if !slices.Contains(metadata.TOP_LEVEL_ROLE_NAMES[:], role) {
		return nil, errs.E(errs.Invalid, "tuf: cannot rotate %q: roles are root, targets, snapshot and timestamp", role)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	st, err := r.load(ctx)
	if err != nil {
		return nil, err
	}
	if err := r.syncKeys(st); err != nil {
		return nil, err
	}
	if err := settleRotation(r.keyDir, metadata.ROOT, listedIn(st.root, metadata.ROOT)); err != nil {
		return nil, err
	}
	rootKey, err := readKey(keyPath(r.keyDir, metadata.ROOT))
	if errs.Is(err, errs.NotFound) {
		rootKey, err = nil, nil
	}
	if err != nil {
		return nil, err
	}
	held := rootKey != nil && listedIn(st.root, metadata.ROOT)(rootKey.id)
	threshold := st.root.Signed.Roles[metadata.ROOT].Threshold
	if !held || threshold > 1 {
		why := fmt.Sprintf("the root is a threshold of %d of %d custodians' keys", threshold, len(st.root.Signed.Roles[metadata.ROOT].KeyIDs))
		if threshold <= 1 {
			why = "root.key is not in the key dir (kept offline)"
		}
		switch {
		case role == metadata.ROOT && (threshold > 1 || rootKey == nil):
			return nil, errs.E(errs.Invalid, "tuf: rotate root: %s; change the root's keys with afterlife admin root propose, sign and publish", why)
		case role == metadata.ROOT || !mayPropose:
			if rootKey != nil && !held && threshold <= 1 {
				return nil, errs.E(errs.Invalid, "tuf: rotate %s: root.key in the key dir is not the key the current root trusts", role)
			}
			return nil, errs.E(errs.Invalid, "tuf: rotate %s: %s; bring the offline root key back for the rotation, or have the root's key holders sign a proposal", role, why)
		}
		var signers []*roleKey
		if held {
			signers = append(signers, rootKey)
		}
		return r.proposeRotation(st, role, signers)
	}

	newKey, err := generateRoleKey()
	if err != nil {
		return nil, err
	}
	// Written before the new root is published, so the key is never lost;
	// settleRotation finishes or discards it if we stop half-way.
	if err := writeKey(keyPath(r.keyDir, role)+".new", newKey); err != nil {
		return nil, err
	}
	root, err := r.nextRoot(st.root, role, newKey)
	if err != nil {
		return nil, err
	}
	signers := []*roleKey{rootKey}
	if role == metadata.ROOT {
		signers = append(signers, newKey)
	}
	if _, err := signMeta(root, signers...); err != nil {
		return nil, err
	}
	if err := r.publishRoot(ctx, st, root, map[string]*roleKey{role: newKey}); err != nil {
		return nil, fmt.Errorf("tuf: rotate %s: %w", role, err)
	}
	if err := settleRotation(r.keyDir, role, listedIn(root, role)); err != nil {
		return nil, err
	}
	r.o.Logger.Info("tuf key rotated", "role", role, "key", newKey.id, "root_version", root.Signed.Version)
	return nil, nil
}

// nextRoot is a copy of root with the next version, a fresh expiry and
// newKey as role's only key.
func (r *Repo) nextRoot(cur *metadata.Metadata[metadata.RootType], role string, newKey *roleKey) (*metadata.Metadata[metadata.RootType], error) {
	root, err := copyRoot(cur)
	if err != nil {
		return nil, err
	}
	root.Signed.Version++
	root.Signed.Expires = r.expires(r.o.RootExpiry)
	for _, id := range slices.Clone(root.Signed.Roles[role].KeyIDs) {
		if err := root.Signed.RevokeKey(id, role); err != nil {
			return nil, fmt.Errorf("tuf: rotate %s: %w", role, err)
		}
	}
	if err := root.Signed.AddKey(newKey.pub, role); err != nil {
		return nil, fmt.Errorf("tuf: rotate %s: %w", role, err)
	}
	return root, nil
}

// proposeRotation keeps a new key for role as a proposed key and returns
// the next root listing it, signed by signers (possibly none).
func (r *Repo) proposeRotation(st *state, role string, signers []*roleKey) ([]byte, error) {
	newKey, err := generateRoleKey()
	if err != nil {
		return nil, err
	}
	root, err := r.nextRoot(st.root, role, newKey)
	if err != nil {
		return nil, err
	}
	if err := writeKey(proposedKeyPath(r.keyDir, role, root.Signed.Version), newKey); err != nil {
		return nil, err
	}
	data, err := signMeta(root, signers...)
	if err != nil {
		return nil, err
	}
	r.o.Logger.Info("tuf key rotation proposed; the root's key holders sign it", "role", role, "key", newKey.id, "root_version", root.Signed.Version)
	return data, nil
}

// publishRoot publishes root (already signed) with the online keys in
// newKeys replacing the current ones, re-signing what each new key signs:
// for targets, targets.json and every hashed bin; for snapshot, the
// snapshot; always the timestamp.
func (r *Repo) publishRoot(ctx context.Context, st *state, root *metadata.Metadata[metadata.RootType], newKeys map[string]*roleKey) error {
	ch := change{root: root}
	keys := map[string]*roleKey{}
	for k, v := range r.keys {
		keys[k] = v
	}
	for role, newKey := range newKeys {
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
	}
	r.keys = keys
	if err := r.commit(ctx, st, ch); err != nil {
		// Whatever reached the store decides which key is current; the
		// next mutation re-reads it and settles the key files.
		r.keys = map[string]*roleKey{}
		return err
	}
	return nil
}

func copyRoot(m *metadata.Metadata[metadata.RootType]) (*metadata.Metadata[metadata.RootType], error) {
	b, err := m.ToBytes(false)
	if err != nil {
		return nil, fmt.Errorf("tuf: copy root: %w", err)
	}
	return (&metadata.Metadata[metadata.RootType]{}).FromBytes(b)
}
